#!/usr/bin/env python3
"""An HTTP/2 server over TLS (python3-h2) that sends a body whole and then
waits before it ends the stream: the sender that outwaits a proxy's hold of
the last DATA frame. GET /NAME answers the file DIR/NAME in two DATA frames,
then sleeps PAUSE seconds, then sends an empty DATA frame with END_STREAM.

Usage: h2-slow.py PORT CERT KEY DIR [PAUSE]"""
import os
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events


def serve_one(sock, directory, pause):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    lock = threading.Lock()

    def answer(stream, path):
        name = os.path.basename(path.split("?")[0])
        try:
            with open(os.path.join(directory, name), "rb") as f:
                body = f.read()
        except OSError:
            with lock:
                conn.send_headers(stream, [(":status", "404")], end_stream=True)
                sock.sendall(conn.data_to_send())
            return
        half = len(body) // 2
        with lock:
            conn.send_headers(stream, [(":status", "200"),
                                       ("content-type", "application/octet-stream")])
            for piece in (body[:half], body[half:]):
                while piece:
                    n = min(len(piece), conn.local_flow_control_window(stream),
                            conn.max_outbound_frame_size)
                    conn.send_data(stream, piece[:n])
                    piece = piece[n:]
            sock.sendall(conn.data_to_send())
        time.sleep(pause)
        with lock:
            conn.send_data(stream, b"", end_stream=True)
            sock.sendall(conn.data_to_send())

    while True:
        data = sock.recv(65536)
        if not data:
            return
        with lock:
            events = conn.receive_data(data)
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                path = dict((k.decode() if isinstance(k, bytes) else k,
                             v.decode() if isinstance(v, bytes) else v)
                            for k, v in ev.headers)[":path"]
                threading.Thread(target=answer, args=(ev.stream_id, path), daemon=True).start()
            elif isinstance(ev, h2.events.ConnectionTerminated):
                return


def main():
    port, cert, key, directory = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 3.0
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", port))
    lsock.listen(64)
    while True:
        raw, _ = lsock.accept()

        def run(raw=raw):
            try:
                with ctx.wrap_socket(raw, server_side=True) as s:
                    serve_one(s, directory, pause)
            except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
                pass
        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    main()
