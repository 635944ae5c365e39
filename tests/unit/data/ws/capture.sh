#!/bin/sh
# Regenerates the WebSocket captures of tests/unit/test_ws.c: capture.py runs
# a python3-websockets 10.4 server and client on 127.0.0.1 through relay.py,
# which saves both streams; capture.py prints what each application received.
# Run from this directory.
set -eu
here=$(pwd)
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for sc in plain deflate deflate_nct; do
    "$PY" relay.py 18181 18180 "$tmp/cap" &
    rpid=$!
    sleep 1
    "$PY" capture.py $sc 18180 18181 >"$tmp/$sc.json"
    sleep 1
    kill $rpid
    wait $rpid 2>/dev/null || true
    mv "$tmp/cap.0.c2s" "$here/$sc.c2s"
    mv "$tmp/cap.0.s2c" "$here/$sc.s2c"
    rm -f "$tmp"/cap.*
    cat "$tmp/$sc.json"
done
