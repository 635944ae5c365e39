#!/usr/bin/python3
"""Ground truth for WebSocket: python3-websockets 10.4 server and client on
127.0.0.1 through relay.py; prints what each side's application received.

capture.py SCENARIO SERVER_PORT RELAY_PORT (capture.sh runs it)
"""
import asyncio
import json
import sys

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory)

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
TEXT = EICAR.decode()

scenario, sport, rport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
received = {"server": [], "client": []}


def rec(side, m):
    received[side].append(["text", m] if isinstance(m, str) else ["binary", m.hex()])


async def handler(ws):
    # Server side: receive what the client sends, then send its own.
    for _ in range(4):
        rec("server", await ws.recv())
    await ws.send(TEXT)
    await ws.send(EICAR)
    await ws.send([TEXT[:20], TEXT[20:41], TEXT[41:]])
    await ws.send("x" * 300 + TEXT)
    await ws.close(1000, "bye")


def server_kwargs():
    if scenario == "plain":
        return {"compression": None}
    if scenario == "deflate":
        return {}
    if scenario == "deflate_nct":
        return {"extensions": [ServerPerMessageDeflateFactory(
            server_no_context_takeover=True, client_no_context_takeover=True,
            server_max_window_bits=10, client_max_window_bits=9)],
            "compression": None}
    raise SystemExit("unknown scenario")


async def main():
    async with websockets.serve(handler, "127.0.0.1", sport, ping_interval=None,
                                **server_kwargs()):
        ckw = {"compression": None} if scenario == "plain" else {}
        async with websockets.connect("ws://127.0.0.1:%d/chat" % rport, ping_interval=None,
                                      **ckw) as ws:
            await ws.send("hello " + TEXT)
            await ws.send(EICAR)
            await ws.send([EICAR[:10], EICAR[10:68]])
            await ws.send(TEXT)
            for _ in range(4):
                rec("client", await ws.recv())
            try:
                await ws.recv()
            except websockets.ConnectionClosed as e:
                received["client"].append(["close", e.code, e.reason])
    print(json.dumps(received, indent=1))


asyncio.run(main())
