#!/usr/bin/env python3
"""HTTP/1.1 test server for sluice's end-to-end tests and benchmark.

Runs on the host or inside the Debian test image, whose python3-minimal has
no http.server, gzip or json: only sockets, threads, zlib and hashlib.

  server.py --port N [--bind ADDR] --dir DIR [--cert PEM --key PEM [--tls VERSION]
            [--client-ca PEM [--client-verify optional|required]]]

With --cert and --key it speaks HTTPS (--tls 1.0 offers TLS 1.0 alone, as an
outdated server would; --client-ca PEM asks clients for a certificate, which
they must show unless --client-verify optional).

  GET  /NAME                       DIR/NAME with Content-Length
  GET  /NAME?enc=gzip              gzip-compressed, Content-Encoding: gzip
  GET  /NAME?pre=CODING            DIR/NAME.CODING as it is, with Content-Encoding: CODING
                                   (files compressed beforehand: large ones too)
  GET  /NAME?te=chunked&chunk=N    Transfer-Encoding: chunked, N-byte chunks
  GET  /NAME?slow=N&delay=S        the whole response N bytes per write, TCP_NODELAY,
                                   S seconds between writes
  GET  /gen/SIZE                   SIZE bytes of random-looking data made on the fly
  POST /NAME  (or PUT)             body (Content-Length or chunked) written to
                                   DIR/uploads/NAME as it arrives; answers its sha256
Query options combine (enc=gzip&te=chunked&slow=3)."""
import hashlib
import os
import socket
import sys
import threading
import time
import zlib
from urllib.parse import parse_qs, unquote, urlsplit

BLOCK = os.urandom(1 << 20)


def read_head(conn, buf):
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, buf
        buf += data
        if len(buf) > 65536:
            return None, buf
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) != 3:
        return None, b""
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return (parts[0], parts[1], parts[2], headers), rest


class Conn:
    def __init__(self, sock, directory):
        self.sock = sock
        self.dir = directory
        self.slow = 0
        self.delay = 0.0

    def send(self, data):
        if not self.slow:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), self.slow):
            self.sock.sendall(data[i:i + self.slow])
            if self.delay:
                time.sleep(self.delay)

    def respond(self, status, body=b"", headers=()):
        head = f"HTTP/1.1 {status}\r\nServer: sluice-test\r\n"
        for k, v in headers:
            head += f"{k}: {v}\r\n"
        if not any(k.lower() == "transfer-encoding" for k, _ in headers):
            head += f"Content-Length: {len(body)}\r\n"
        self.send(head.encode() + b"\r\n" + body)

    def read_body(self, headers, rest, out):
        """Reads a request body into the file out; returns (sha256, size, rest)."""
        h = hashlib.sha256()
        size = 0
        buf = rest

        def take(data):
            nonlocal size
            h.update(data)
            size += len(data)
            out.write(data)
            out.flush()

        def fill(n):
            nonlocal buf
            while len(buf) < n:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("peer closed")
                buf += data

        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                while b"\r\n" not in buf:
                    fill(len(buf) + 1)
                line, buf = buf.split(b"\r\n", 1)
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    fill(2)
                    buf = buf[2:]
                    break
                fill(n + 2)
                take(buf[:n])
                buf = buf[n + 2:]
        else:
            left = int(headers.get("content-length", "0"))
            while left:
                if not buf:
                    buf = self.sock.recv(min(left, 65536))
                    if not buf:
                        raise ConnectionError("peer closed")
                piece, buf = buf[:left], buf[left:]
                take(piece)
                left -= len(piece)
        return h.hexdigest(), size, buf

    def handle(self):
        buf = b""
        while True:
            req, buf = read_head(self.sock, buf)
            if req is None:
                return
            method, target, _version, headers = req
            url = urlsplit(target)
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            self.slow = int(q.get("slow", "0"))
            self.delay = float(q.get("delay", "0.02" if self.slow else "0"))
            if self.slow:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            name = os.path.basename(unquote(url.path)) or "index"
            log(f"{method} {target}")
            if method in ("POST", "PUT"):
                os.makedirs(os.path.join(self.dir, "uploads"), exist_ok=True)
                with open(os.path.join(self.dir, "uploads", name), "wb") as out:
                    digest, size, buf = self.read_body(headers, buf, out)
                self.respond("200 OK", f"{digest} {size}\n".encode(),
                             [("Content-Type", "text/plain")])
            elif method in ("GET", "HEAD"):
                if not self.get(url.path, name, q, method == "HEAD"):
                    return
            else:
                self.respond("405 Method Not Allowed")
            if headers.get("connection", "").lower() == "close":
                return

    def get(self, path, name, q, head_only):
        if path.startswith("/gen/"):
            size = int(name)
            self.send(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n"
                      f"Content-Type: application/octet-stream\r\n\r\n".encode())
            if not head_only:
                while size > 0:
                    n = min(size, len(BLOCK))
                    self.sock.sendall(BLOCK[:n])
                    size -= n
            return True
        path = os.path.join(self.dir, name)
        if not os.path.isfile(path):
            self.respond("404 Not Found", b"not found\n")
            return True
        hdrs = [("Content-Type", "application/octet-stream")]
        plain = not (q.get("enc") or q.get("te") or self.slow)
        coding = ""
        if q.get("pre") and plain:
            coding = f"Content-Encoding: {q['pre']}\r\n"
            path = f"{path}.{q['pre'].replace(', ', '.')}"
            if not os.path.isfile(path):
                self.respond("404 Not Found", b"not found\n")
                return True
        if plain:
            # Large files go out with sendfile: the server must not be the
            # bottleneck of a throughput measurement.
            size = os.path.getsize(path)
            self.send(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n{coding}"
                      f"Content-Type: application/octet-stream\r\n\r\n".encode())
            if not head_only:
                with open(path, "rb") as f:
                    self.sock.sendfile(f)
            return True
        with open(path, "rb") as f:
            body = f.read()
        if q.get("enc") == "gzip":
            z = zlib.compressobj(9, zlib.DEFLATED, 31)
            body = z.compress(body) + z.flush()
            hdrs.append(("Content-Encoding", "gzip"))
        if q.get("te") == "chunked":
            n = int(q.get("chunk", "16"))
            hdrs.append(("Transfer-Encoding", "chunked"))
            body = b"".join(b"%x\r\n" % len(body[i:i + n]) + body[i:i + n] + b"\r\n"
                            for i in range(0, len(body), n)) + b"0\r\n\r\n"
        self.respond("200 OK", b"" if head_only else body, hdrs)
        return True


def log(msg):
    print(f"server: {msg}", file=sys.stderr, flush=True)


def serve(conn, directory, tls=None):
    try:
        if tls:
            conn = tls.wrap_socket(conn, server_side=True)
        Conn(conn, directory).handle()
    except (OSError, ValueError, ConnectionError) as e:  # ssl.SSLError is an OSError
        log(f"connection ended: {e}")
    finally:
        conn.close()


def main():
    args = sys.argv[1:]
    opts = {"--port": "80", "--bind": "0.0.0.0", "--dir": ".", "--cert": "", "--key": "",
            "--tls": "", "--client-ca": "", "--client-verify": "required"}
    while args:
        k = args.pop(0)
        if k not in opts or not args:
            sys.exit(__doc__)
        opts[k] = args.pop(0)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((opts["--bind"], int(opts["--port"])))
    ls.listen(1024)  # 1,000 clients at once (check-tls-load): no SYN retried
    tls = None
    if opts["--cert"]:
        import ssl
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if opts["--tls"] == "1.0":
            tls.set_ciphers("DEFAULT:@SECLEVEL=0")
            tls.minimum_version = tls.maximum_version = ssl.TLSVersion.TLSv1
        else:
            # Test certificates may be weak on purpose (RSA-1024, SHA-1).
            tls.set_ciphers("DEFAULT:@SECLEVEL=0")
        tls.load_cert_chain(opts["--cert"], opts["--key"])
        if opts["--client-ca"]:  # mutual TLS: clients must (or may) show a certificate
            optional = opts["--client-verify"] == "optional"
            tls.verify_mode = ssl.CERT_OPTIONAL if optional else ssl.CERT_REQUIRED
            tls.load_verify_locations(opts["--client-ca"])
    log(f"listening on {opts['--bind']}:{opts['--port']}, serving {opts['--dir']}")
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn, opts["--dir"], tls), daemon=True).start()


if __name__ == "__main__":
    main()
