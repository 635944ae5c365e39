#!/usr/bin/env python3
"""The evasion suite's hostile server: serves every case of cases.py at
/case/NAME on port 80 (HTTP/1.x, WebSocket, h2c Upgrade, CONNECT and
absolute-form proxy requests, uploads), and each HTTP/2 prior-knowledge case
on a port of its own (cases.h2_ports()). Raw sockets and threads, stdlib only
(plus python3-brotli and zstd for the codings).

  server.py --dir DIR [--port 80]

What a job did is left in DIR/pending for the client-side driver to claim
after each job (jobs run one at a time):
  conn-PORT-N        one per request served; holds the case name
  up-N-I.bin         each value the application decoded from an upload
                     (multipart parts with their transfer encoding undone,
                     form fields, JSON strings, WebSocket messages, HTTP/2
                     request bodies)"""
import argparse
import base64
import email
import email.policy
import gzip
import hashlib
import json
import os
import socket
import sys
import threading
import time
import traceback
import zlib
from urllib.parse import parse_qs, urlsplit

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases as C  # noqa: E402

CASES = C.by_name()
PENDING = None
_counter = [0]
_lock = threading.Lock()


def next_id():
    with _lock:
        _counter[0] += 1
        return _counter[0]


def note_conn(peer, case):
    n = next_id()
    with open(os.path.join(PENDING, f"conn-{peer[1]}-{n}"), "w") as f:
        f.write(f"{peer[0]} {peer[1]} {case} {time.time():.3f}\n")


def record(values):
    n = next_id()
    for i, v in enumerate(values):
        tmp = os.path.join(PENDING, f".up-{n}-{i}")
        with open(tmp, "wb") as f:
            f.write(v)
        os.rename(tmp, os.path.join(PENDING, f"up-{n}-{i}.bin"))


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        u = urlsplit(target)
        self.path = u.path if target.startswith(("/", "http://")) else target
        self.query = u.query


class Conn:
    def __init__(self, sock, peer, port):
        self.sock = sock
        self.peer = peer
        self.port = port
        self.buf = b""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(15)

    def fill(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise EOFError
        self.buf += data

    def read_exact(self, n):
        parts, have = [self.buf], len(self.buf)
        while have < n:
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError
            parts.append(data)
            have += len(data)
        self.buf = b"".join(parts)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_line(self):
        while b"\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def read_head(self):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head, self.buf = self.buf[:i], self.buf[i + 4:]
                break
            if len(self.buf) > 1 << 20:
                raise ValueError("head too long")
            self.fill()
        lines = head.decode("latin-1").split("\r\n")
        while lines and not lines[0]:
            lines.pop(0)
        parts = lines[0].split()
        if len(parts) < 2:
            raise ValueError(f"bad request line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return Request(parts[0], parts[1], parts[2] if len(parts) > 2 else "", headers)

    def read_body(self, req):
        if "chunked" in req.headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self.read_line().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.read_line():
                        pass
                    return body
                body += self.read_exact(size)
                self.read_line()
        n = int(req.headers.get("content-length", "0") or 0)
        return self.read_exact(n)

    def send(self, parts):
        for p in parts:
            if isinstance(p, float):
                time.sleep(p)
            else:
                self.sock.sendall(p)

    def finish(self):
        """Half-close, then read what the client still sends until it closes,
        so that the kernel does not answer unread data with a reset."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(3)
            while self.sock.recv(1 << 16):
                pass
        except OSError:
            pass


# --- HTTP/1.x ------------------------------------------------------------------------

def serve(conn):
    if conn.port in H2_BY_PORT:
        return h2_serve(conn, CASES[H2_BY_PORT[conn.port]], upgraded=False)
    while True:
        try:
            req = conn.read_head()
        except EOFError:
            return
        if req.method == "CONNECT":
            note_conn(conn.peer, "CONNECT " + req.target)
            conn.sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            continue
        name = req.path.rsplit("/case/", 1)[-1] if "/case/" in req.path else None
        case = CASES.get(name)
        note_conn(conn.peer, name or req.path)
        if case is None:
            conn.sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            continue
        if req.headers.get("expect", "").lower() == "100-continue":
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = conn.read_body(req)
        up = req.headers.get("upgrade", "").lower()
        if case.kind == "ws":
            return ws_serve(conn, req, case)
        if case.kind == "h2":
            if up != "h2c":
                conn.sock.sendall(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
                return conn.finish()
            conn.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                              b"Upgrade: h2c\r\n\r\n")
            return h2_serve(conn, case, upgraded=True)
        if case.kind == "upload":
            record(decode_upload(req, body))
        conn.send(case.respond(req))
        if not case.keep:
            return conn.finish()


def decode_upload(req, body):
    """The values a Python web application would get out of the request."""
    values = []
    for vs in parse_qs(req.query, encoding="latin-1").values():
        values += [v.encode("latin-1") for v in vs]
    ce = req.headers.get("content-encoding", "").lower()
    if "gzip" in ce:
        body = gzip.decompress(body)
    elif "deflate" in ce:
        body = zlib.decompress(body)
    ct = req.headers.get("content-type", "")
    if ct.lower().startswith("multipart/"):
        msg = email.message_from_bytes(b"MIME-Version: 1.0\r\nContent-Type: " + ct.encode() +
                                       b"\r\n\r\n" + body, policy=email.policy.HTTP)
        for part in msg.walk():
            if not part.is_multipart():
                values.append(part.get_payload(decode=True) or b"")
    elif ct.lower().startswith("application/x-www-form-urlencoded"):
        for vs in parse_qs(body.decode("latin-1"), encoding="latin-1").values():
            values += [v.encode("latin-1") for v in vs]
    elif "json" in ct.lower():
        values += json_strings(json.loads(body))
    elif body:
        values.append(body)
    return values


def json_strings(v):
    if isinstance(v, str):
        return [v.encode("utf-8", "surrogatepass")]
    if isinstance(v, dict):
        return sum((json_strings(x) for x in list(v.keys()) + list(v.values())), [])
    if isinstance(v, list):
        return sum((json_strings(x) for x in v), [])
    return []


# --- WebSocket -----------------------------------------------------------------------

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(fin, rsv1, op, payload):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    n = len(payload)
    if n < 126:
        hdr = bytes([b0, n])
    elif n < 1 << 16:
        hdr = bytes([b0, 126]) + n.to_bytes(2, "big")
    else:
        hdr = bytes([b0, 127]) + n.to_bytes(8, "big")
    return hdr + payload


def ws_read_frame(conn):
    b0, b1 = conn.read_exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(conn.read_exact(2), "big")
    elif n == 127:
        n = int.from_bytes(conn.read_exact(8), "big")
    mask = conn.read_exact(4) if b1 & 0x80 else None
    data = conn.read_exact(n)
    if mask:
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
    return b0 & 0x80, b0 & 0x40, b0 & 0x0F, data


def ws_serve(conn, req, case):
    key = req.headers.get("sec-websocket-key", "").encode()
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    frames, pmd = case.ws
    offered = "permessage-deflate" in req.headers.get("sec-websocket-extensions", "")
    use_pmd = offered and (pmd or case.upload)
    resp = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n")
    if use_pmd:
        resp += b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
    conn.sock.sendall(resp + b"\r\n")
    if case.upload:
        return ws_receive(conn, use_pmd)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)

    def compress(msg):
        if not use_pmd:
            return msg
        return (comp.compress(msg) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]
    for fin, rsv1, op, payload in frames(compress):
        conn.sock.sendall(ws_frame(fin, rsv1 and use_pmd, op, payload))
        time.sleep(0.01)
    conn.sock.sendall(ws_frame(1, 0, 8, b"\x03\xe8"))
    try:
        while True:
            if ws_read_frame(conn)[2] == 8:
                break
    except (EOFError, OSError):
        pass
    conn.finish()


def ws_receive(conn, use_pmd):
    dec = zlib.decompressobj(-15)
    msg, compressed = b"", False
    try:
        while True:
            fin, rsv1, op, data = ws_read_frame(conn)
            if op == 8:
                conn.sock.sendall(ws_frame(1, 0, 8, b"\x03\xe8"))
                break
            if op in (9, 10):
                continue
            if op != 0:
                msg, compressed = b"", bool(rsv1)
            msg += data
            if fin:
                if compressed:
                    msg = dec.decompress(msg + b"\x00\x00\xff\xff")
                record([msg])
                conn.sock.sendall(ws_frame(1, 0, 8, b"\x03\xe8"))
    except (EOFError, OSError):
        pass
    conn.finish()


# --- HTTP/2 cleartext ------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(typ, flags, sid, payload):
    return len(payload).to_bytes(3, "big") + bytes([typ, flags]) + sid.to_bytes(4, "big") + payload


def h2_respond(conn, case, sid):
    if case.upload:
        frames = [(1, 4, b"\x88" + C.hpack_lit(b"content-length", b"3")), (0, 1, b"ok\n")]
    else:
        frames = case.h2(sid)
    for typ, flags, payload in frames:
        conn.sock.sendall(h2_frame(typ, flags, sid, payload))


def h2_serve(conn, case, upgraded):
    conn.sock.sendall(h2_frame(4, 0, 0, b""))
    if upgraded:
        h2_respond(conn, case, 1)
    conn.sock.settimeout(5)
    bodies = {}
    try:
        conn.read_exact(len(PREFACE))
        while True:
            hdr = conn.read_exact(9)
            n, typ, flags = int.from_bytes(hdr[:3], "big"), hdr[3], hdr[4]
            sid = int.from_bytes(hdr[5:9], "big") & 0x7FFFFFFF
            payload = conn.read_exact(n)
            if typ == 4 and not flags & 1:
                conn.sock.sendall(h2_frame(4, 1, 0, b""))
            elif typ == 6 and not flags & 1:
                conn.sock.sendall(h2_frame(6, 1, 0, payload))
            elif typ == 1:
                note_conn(conn.peer, case.name)
                bodies[sid] = b""
                if flags & 1:
                    h2_respond(conn, case, sid)
            elif typ == 0:
                if flags & 8:
                    payload = payload[1:len(payload) - payload[0]]
                bodies[sid] = bodies.get(sid, b"") + payload
                if flags & 1:
                    if case.upload:
                        record([bodies[sid]])
                    h2_respond(conn, case, sid)
            elif typ == 7:
                break
    except (EOFError, OSError):
        pass
    conn.finish()


# --- main -------------------------------------------------------------------------------

H2_BY_PORT = {}


def handle(sock, peer, port):
    conn = Conn(sock, peer, port)
    try:
        serve(conn)
    except (EOFError, OSError):
        pass
    except Exception:
        traceback.print_exc()
    finally:
        sock.close()


def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)

    def loop():
        while True:
            c, peer = s.accept()
            threading.Thread(target=handle, args=(c, peer, port), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


def main():
    global PENDING
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=80)
    a = ap.parse_args()
    PENDING = os.path.join(a.dir, "pending")
    os.makedirs(PENDING, exist_ok=True)
    for name, port in C.h2_ports().items():
        H2_BY_PORT[port] = name
        listen(port)
    listen(a.port)
    print(f"serving {len(CASES)} cases on port {a.port}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
