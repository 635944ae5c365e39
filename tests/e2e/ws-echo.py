#!/usr/bin/env python3
"""A WebSocket echo service and client over TLS for sluice's tests, on the
standard library alone (RFC 6455: handshake, one unfragmented frame per
message). The server echoes each message, and answers b"eicar" with the
EICAR test string.

  ws-echo.py serve PORT CERT KEY
  ws-echo.py call HOST PORT NAME CAFILE MESSAGE|@eicar
      prints "ok <answer>" or "error <why>"; exit 0 either way"""
import base64
import hashlib
import os
import socket
import ssl
import struct
import sys
import threading

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def read_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(1)
        if not chunk:
            raise EOFError("connection closed in the head")
        data += chunk
    return data.decode("latin-1")


def send_frame(s, payload, mask):
    head = bytes([0x82])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    s.sendall(head + payload)


def read_frame(s):
    b0, b1 = read_exact(s, 2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack(">H", read_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", read_exact(s, 8))[0]
    key = read_exact(s, 4) if b1 & 0x80 else None
    payload = read_exact(s, n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0f, payload


def handle(conn):
    try:
        head = read_head(conn)
        key = [ln.split(":", 1)[1].strip() for ln in head.split("\r\n")
               if ln.lower().startswith("sec-websocket-key:")][0]
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        while True:
            op, payload = read_frame(conn)
            if op == 8:
                return
            send_frame(conn, EICAR if payload == b"eicar" else payload, False)
    except (EOFError, OSError, IndexError):
        pass
    finally:
        conn.close()


def serve(port, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    lis = socket.create_server(("0.0.0.0", port))
    while True:
        c, _ = lis.accept()
        try:
            t = ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            c.close()
            continue
        threading.Thread(target=handle, args=(t,), daemon=True).start()


def call(host, port, name, cafile, message):
    ctx = ssl.create_default_context(cafile=cafile)
    try:
        s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20),
                            server_hostname=name)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /ws HTTP/1.1\r\nHost: {name}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = read_head(s)
        if " 101 " not in head.split("\r\n")[0]:
            print("error no upgrade: " + head.split("\r\n")[0])
            return
        send_frame(s, EICAR if message == "@eicar" else message.encode(), True)
        op, payload = read_frame(s)
        print("ok " + payload.decode(errors="replace"))
    except (EOFError, OSError, ValueError) as e:
        print(f"error {e}")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        call(*sys.argv[2:7])
