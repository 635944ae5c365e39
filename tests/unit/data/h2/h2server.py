#!/usr/bin/python3
"""h2c server on 127.0.0.1 with python3-h2: prior knowledge and HTTP/1.1 Upgrade.

Serves www/NAME; NAME.gz is sent with content-encoding: gzip; POST echoes.
"""
import gzip
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def body_for(path):
    name = path.split("?")[0].lstrip("/")
    if name.endswith(".gz"):
        raw = open(name[:-3], "rb").read()
        return gzip.compress(raw), [("content-encoding", "gzip")]
    return open(name, "rb").read(), []


def respond(conn, sock, sid, path, upload):
    if upload is not None:
        data, extra = bytes(upload), []
    else:
        data, extra = body_for(path)
    conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(data))),
                            ("content-type", "application/octet-stream")] + extra)
    off = 0
    while off < len(data):
        n = min(len(data) - off, conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
        if n <= 0:
            sock.sendall(conn.data_to_send())
            ev = conn.receive_data(sock.recv(65536))
            continue
        conn.send_data(sid, data[off:off + n], end_stream=(off + n == len(data)))
        off += n
    if not data:
        conn.end_stream(sid)
    sock.sendall(conn.data_to_send())


def serve(sock):
    cfg = h2.config.H2Configuration(client_side=False)
    conn = h2.connection.H2Connection(config=cfg)
    first = b""
    while len(first) < len(PREFACE) and b"\r\n\r\n" not in first:
        b = sock.recv(65536)
        if not b:
            return
        first += b
    pending = {}
    if first.startswith(PREFACE):
        conn.initiate_connection()
        events = conn.receive_data(first)
    else:
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        head, rest = first.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        conn.initiate_upgrade_connection(hdrs["http2-settings"])
        pending[1] = (lines[0].split()[1], None)
        events = conn.receive_data(rest) if rest else []
    sock.sendall(conn.data_to_send())
    for sid, (path, up) in list(pending.items()):
        respond(conn, sock, sid, path, up)
        del pending[sid]
    uploads = {}
    while True:
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                h = dict(ev.headers)
                uploads[ev.stream_id] = [h[b":path"].decode(), bytearray() if h[b":method"] == b"POST" else None]
                if ev.stream_ended:
                    respond(conn, sock, ev.stream_id, *uploads.pop(ev.stream_id))
            elif isinstance(ev, h2.events.DataReceived):
                uploads[ev.stream_id][1].extend(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if ev.stream_ended:
                    p, u = uploads.pop(ev.stream_id)
                    print("server got upload of %d bytes: %r" % (len(u), bytes(u)[:80]), flush=True)
                    respond(conn, sock, ev.stream_id, p, u)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in uploads:
                p, u = uploads.pop(ev.stream_id)
                if u is not None:
                    print("server got upload of %d bytes: %r" % (len(u), bytes(u)[:80]), flush=True)
                respond(conn, sock, ev.stream_id, p, u)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                return
        sock.sendall(conn.data_to_send())
        b = sock.recv(65536)
        if not b:
            return
        events = conn.receive_data(b)


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(sys.argv[1])))
    ls.listen(8)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=lambda: (serve(s), s.close()), daemon=True).start()


main()
