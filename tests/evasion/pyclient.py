#!/usr/bin/env python3
"""The Python clients of the evasion suite, as an application would use them:
urllib, requests and websockets (python3-requests, python3-websockets).

  pyclient.py MODE URL OUT [ARGS...]

Writes what the application got to OUT (nothing when the library raised
before handing the body over); exits 0 on success, 1 on an error."""
import os
import sys

T = float(os.environ.get("EV_T", "10"))


def save(out, data):
    with open(out, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def get_urllib(url, out):
    import urllib.request
    with urllib.request.urlopen(url, timeout=T) as r:
        save(out, r.read())


def get_requests(url, out, headers=None, proxies=None):
    import requests
    r = requests.get(url, timeout=T, headers=headers, proxies=proxies)
    save(out, r.content)
    return r.content


def post_raw(url, out, path, ctype, *extra):
    import urllib.request
    headers = {"Content-Type": ctype}
    for h in extra:
        k, _, v = h.partition(":")
        headers[k.strip()] = v.strip()
    req = urllib.request.Request(url, data=read(path), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=T) as r:
        save(out, r.read())


def post_requests(url, out, **kw):
    import requests
    r = requests.post(url, timeout=T, **kw)
    save(out, r.content)


def get_ranges(url, out, *ranges):
    data = b""
    for rng in ranges:
        data += get_requests(url, out + ".part", headers={"Range": "bytes=" + rng})
    save(out, data)


def ws_get(url, out, comp):
    import asyncio
    import websockets

    async def go():
        msgs = []
        try:
            async with websockets.connect(url, compression=comp, open_timeout=T,
                                          close_timeout=3, max_size=None) as ws:
                async for m in ws:
                    msgs.append(m.encode() if isinstance(m, str) else m)
        finally:
            if msgs:
                save(out, b"\n--message--\n".join(msgs))
    asyncio.run(asyncio.wait_for(go(), T))


def ws_send(url, out, path, comp, frag):
    import asyncio
    import websockets
    data = read(path)

    async def go():
        async with websockets.connect(url, compression=comp, open_timeout=T,
                                      close_timeout=3) as ws:
            if frag:
                await ws.send([data[:20], data[20:40], data[40:]])
            else:
                await ws.send(data)
            try:
                await ws.recv()
            except websockets.ConnectionClosed:
                pass
    asyncio.run(asyncio.wait_for(go(), T))


def main():
    mode, url, out, *args = sys.argv[1:]
    if mode == "get-urllib":
        get_urllib(url, out)
    elif mode == "get-requests":
        get_requests(url, out)
    elif mode == "get-proxy":
        get_requests(url, out, proxies={"http": args[0]})
    elif mode == "post-raw":
        post_raw(url, out, *args)
    elif mode == "post-files":
        post_requests(url, out, files={"file": ("e.txt", read(args[0]))})
    elif mode == "post-form":
        post_requests(url, out, data={"v": read(args[0]).decode("latin-1")})
    elif mode == "post-json":
        post_requests(url, out, json={"v": read(args[0]).decode("latin-1")})
    elif mode == "get-ranges":
        get_ranges(url, out, *args)
    elif mode in ("ws", "ws-nocomp"):
        ws_get(url, out, None if mode == "ws-nocomp" else "deflate")
    elif mode in ("ws-send", "ws-send-nocomp", "ws-send-frag"):
        ws_send(url, out, args[0], None if mode == "ws-send-nocomp" else "deflate",
                mode == "ws-send-frag")
    else:
        sys.exit(f"pyclient: unknown mode {mode}")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"pyclient: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
