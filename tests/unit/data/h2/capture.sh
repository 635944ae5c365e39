#!/bin/sh
# Regenerates the h2c captures of tests/unit/test_h2.c: real clients and
# servers on 127.0.0.1, through ../ws/relay.py, which saves both streams and
# the order of their pieces. Needs nghttpd (nghttp2-server), nghttp
# (nghttp2-client), curl 7.88 and python3-h2. Run from this directory.
#   prior    curl --http2-prior-knowledge, nghttpd
#   pad      the same, nghttpd padding every frame (-b 16)
#   upgrade  curl --http2 (HTTP/1.1 Upgrade: h2c), h2server.py
#   gzip     curl --http2-prior-knowledge --compressed, h2server.py sending
#            content-encoding: gzip
#   upload   curl --http2-prior-knowledge --data-binary @eicar.com, nghttpd
#            --echo-upload
#   multi    nghttp with three concurrent streams, client padding and a
#            20000-byte header (CONTINUATION), nghttpd -b 16
set -eu
here=$(pwd)
PY=${PYTHON:-/usr/bin/python3}
www=$(mktemp -d)
trap 'rm -rf "$www"' EXIT
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$www/eicar.com"
# 70068 bytes: a pattern the test rebuilds, EICAR at offset 30000.
"$PY" -c "
e=open('$www/eicar.com','rb').read()
p=bytes((i*7+i//251)&0xff for i in range(70000))
open('$www/big.bin','wb').write(p[:30000]+e+p[30000:])"
SP=18190 RP=18191

run() { # name server-command client-command...
    name=$1 server=$2
    shift 2
    (cd "$www" && exec $server) >/dev/null 2>&1 &
    spid=$!
    "$PY" "$here/../ws/relay.py" $RP $SP "$www/cap" &
    rpid=$!
    sleep 1
    (cd "$www" && "$@") >/dev/null
    sleep 1
    kill $rpid $spid
    wait $rpid $spid 2>/dev/null || true
    for x in c2s s2c order; do mv "$www/cap.0.$x" "$here/$name.$x"; done
    rm -f "$www"/cap.*
}

url=http://127.0.0.1:$RP
big=$(head -c 20000 /dev/zero | tr '\0' a)
run prior "nghttpd --no-tls -d . $SP" curl -sS --http2-prior-knowledge -o out $url/eicar.com
run pad "nghttpd --no-tls -b 16 -d . $SP" curl -sS --http2-prior-knowledge -o out $url/eicar.com
run upgrade "$PY $here/h2server.py $SP" curl -sS --http2 -o out $url/eicar.com
run gzip "$PY $here/h2server.py $SP" curl -sS --http2-prior-knowledge --compressed -o out \
    $url/eicar.com.gz
run upload "nghttpd --no-tls --echo-upload -d . $SP" curl -sS --http2-prior-knowledge \
    --data-binary @eicar.com -o out $url/echo
run multi "nghttpd --no-tls -b 16 -d . $SP" nghttp -b 8 -H "x-big: $big" \
    $url/big.bin $url/eicar.com "$url/big.bin?2"
