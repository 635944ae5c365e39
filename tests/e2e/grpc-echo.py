#!/usr/bin/env python3
"""A gRPC service and client over TLS for sluice's HTTP/2 tests, with bytes
as messages (no protobuf): /sluice.Echo/Call answers b"got " + the SHA-256
of the request, or the EICAR test string for the request b"eicar".

  grpc-echo.py serve PORT CERT KEY
  grpc-echo.py call HOST:PORT NAME CAFILE MESSAGE|@eicar
      prints "ok <answer>" or "error <code> <details>"; exit 0 either way"""
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

    handler = grpc.method_handlers_generic_handler(
        "sluice.Echo", {"Call": grpc.unary_unary_rpc_method_handler(call)})
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


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        call(*sys.argv[2:6])
