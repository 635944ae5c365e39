#!/usr/bin/env python3
"""A gRPC service and client over TLS for sluice's HTTP/2 tests, with bytes
as messages (no protobuf): /sluice.Echo/Call answers b"got " + the SHA-256
of the request, or the EICAR test string for the request b"eicar".

  grpc-echo.py serve PORT CERT KEY
  grpc-echo.py call HOST:PORT NAME CAFILE MESSAGE|@eicar
      prints "ok <answer>" or "error <code> <details>"; exit 0 either way
  grpc-echo.py chat HOST:PORT NAME CAFILE N
      /sluice.Echo/Chat, a bidirectional stream: sends N messages, each after
      the answer to the one before; prints "ok N SECONDS" or "error ..."."""
import hashlib
import sys
import time
from concurrent import futures

import grpc

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")


def serve(port, cert, key):
    def call(request, context):
        if request == b"eicar":
            return EICAR
        return b"got " + hashlib.sha256(request).hexdigest().encode()

    def chat(requests, context):
        for r in requests:
            yield b"echo " + r

    handler = grpc.method_handlers_generic_handler(
        "sluice.Echo", {"Call": grpc.unary_unary_rpc_method_handler(call),
                        "Chat": grpc.stream_stream_rpc_method_handler(chat)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials([(open(key, "rb").read(), open(cert, "rb").read())])
    server.add_secure_port(f"0.0.0.0:{port}", creds)
    server.start()
    while True:
        time.sleep(3600)


def call(target, name, cafile, message):
    creds = grpc.ssl_channel_credentials(root_certificates=open(cafile, "rb").read())
    with grpc.secure_channel(target, creds,
                             options=[("grpc.ssl_target_name_override", name)]) as ch:
        stub = ch.unary_unary("/sluice.Echo/Call")
        data = EICAR if message == "@eicar" else message.encode()
        try:
            answer = stub(data, timeout=20)
            print("ok " + answer.decode(errors="replace"))
        except grpc.RpcError as e:
            print(f"error {e.code().name} {e.details()}")


def chat(target, name, cafile, n):
    import queue
    creds = grpc.ssl_channel_credentials(root_certificates=open(cafile, "rb").read())
    q = queue.Queue()

    def requests():
        while True:
            m = q.get()
            if m is None:
                return
            yield m
    with grpc.secure_channel(target, creds,
                             options=[("grpc.ssl_target_name_override", name)]) as ch:
        stub = ch.stream_stream("/sluice.Echo/Chat")
        start = time.time()
        try:
            q.put(b"0")
            answers = stub(requests(), timeout=60)
            got = 0
            for a in answers:
                if a != b"echo %d" % got:
                    print(f"error wrong answer {a!r}")
                    return
                got += 1
                q.put(b"%d" % got if got < int(n) else None)
            print(f"ok {got} {time.time() - start:.2f}")
        except grpc.RpcError as e:
            print(f"error {e.code().name} {e.details()}")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "chat":
        chat(*sys.argv[2:6])
    else:
        call(*sys.argv[2:6])
