#!/usr/bin/env python3
"""Probe: what real HTTP clients save from odd HTTP/1.x responses.

A development tool for dpi/http.c, not a test: it serves each case's exact
bytes from a raw socket on 127.0.0.1 (the request is read and ignored, the
connection closed after the response), runs curl (plain and --compressed),
wget -O, python3 urllib.request and python3 requests against it, and prints
a table of what each client saved: EICAR (exactly the 68-byte test file),
+EICAR (more bytes, EICAR inside), -   (nothing), or the byte count, with the
client's exit code. The parser must hand YARA every body one of them saves.

    tests/evasion/probe_http_clients.py [CASE ...]   # all cases by default
    tests/evasion/probe_http_clients.py --list
"""
import gzip
import os
import socket
import subprocess
import sys
import tempfile
import threading

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
assert len(EICAR) == 68
E = EICAR
GZ = gzip.compress(EICAR, mtime=0)


def head(*lines, status=b"HTTP/1.1 200 OK", eol=b"\r\n"):
    return status + eol + b"".join(l + eol for l in lines) + eol


def chunked(body, size_fmt=b"%x", eol=b"\r\n"):
    return (size_fmt % len(body)) + eol + body + eol + b"0" + eol + eol


CL = b"Content-Length: 68"
TE = b"Transfer-Encoding: chunked"

CASES = [
    ("plain", head(CL) + E),
    ("v1.2", head(CL, status=b"HTTP/1.2 200 OK") + E),
    ("v1.9", head(CL, status=b"HTTP/1.9 200 OK") + E),
    ("v2.0", head(CL, status=b"HTTP/2.0 200 OK") + E),
    ("v1.10", head(CL, status=b"HTTP/1.10 200 OK") + E),
    ("lower-http", head(CL, status=b"http/1.1 200 OK") + E),
    ("200OK", head(CL, status=b"HTTP/1.1 200OK") + E),
    ("tab-status", head(CL, status=b"HTTP/1.1\t200 OK") + E),
    ("two-sp-status", head(CL, status=b"HTTP/1.1  200 OK") + E),
    ("lead-sp-status", head(CL, status=b" HTTP/1.1 200 OK") + E),
    ("status-2digit", head(CL, status=b"HTTP/1.1 20 OK") + E),
    ("status-4digit", head(CL, status=b"HTTP/1.1 2000 OK") + E),
    ("status-999", head(CL, status=b"HTTP/1.1 999 X") + E),
    ("status-099", head(CL, status=b"HTTP/1.1 099 X") + E),
    ("no-version-minor", head(CL, status=b"HTTP/1 200 OK") + E),
    ("sp-before-colon", head(b"X-Foo : bar", CL) + E),
    ("sp-before-colon-cl", head(b"Content-Length : 68") + E),
    ("sp-before-colon-te", head(b"Transfer-Encoding : chunked") + chunked(E)),
    ("no-colon-line", head(b"NoColonHere", CL) + E),
    ("bad-name-char", head(b"Bad(Name): x", CL) + E),
    ("fold-first", head(b" X-Foo: bar", CL) + E),
    ("fold-cl", head(b"Content-Length:", b" 68") + E),
    ("bare-cr", head(CL, eol=b"\r") + E),
    ("bare-lf", head(CL, eol=b"\n") + E),
    ("cr-cr-lf", head(CL, eol=b"\r\r\n") + E),
    ("nul-in-header", head(b"X-Foo: a\0b", CL) + E),
    ("nul-in-name", head(b"X-F\0oo: ab", CL) + E),
    ("line-9000", head(b"X-Big: " + b"a" * 9000, CL) + E),
    ("line-70k", head(b"X-Big: " + b"a" * 70000, CL) + E),
    ("headers-130", head(*[b"X-H%d: v" % i for i in range(130)], CL) + E),
    ("headers-1000", head(*[b"X-H%d: v" % i for i in range(1000)], CL) + E),
    ("head-70k", head(*[b"X-H%d: " % i + b"h" * 990 for i in range(70)], CL) + E),
    ("head-99k", head(*[b"X-H%d: " % i + b"h" * 990 for i in range(99)], CL) + E),
    ("head-120k", head(*[b"X-H%d: " % i + b"h" * 990 for i in range(120)], CL) + E),
    ("head-300k", head(*[b"X-H%d: " % i + b"h" * 990 for i in range(300)], CL) + E),
    ("cl-plus", head(b"Content-Length: +68") + E),
    ("cl-minus", head(b"Content-Length: -68") + E),
    ("cl-empty", head(b"Content-Length:") + E),
    ("cl-junk", head(b"Content-Length: 68abc") + E),
    ("cl-hex", head(b"Content-Length: 0x44") + E),
    ("cl-lead-zero", head(b"Content-Length: 0068") + E),
    ("cl-list-68-1000", head(b"Content-Length: 68, 1000") + E),
    ("cl-list-1000-68", head(b"Content-Length: 1000, 68") + E),
    ("cl-list-10-68", head(b"Content-Length: 10, 68") + E),
    ("cl-two-68-1000", head(CL, b"Content-Length: 1000") + E),
    ("cl-two-1000-68", head(b"Content-Length: 1000", CL) + E),
    ("cl-two-10-68", head(b"Content-Length: 10", CL) + E),
    ("cl-two-68-10", head(CL, b"Content-Length: 10") + E),
    ("cl-short-10", head(b"Content-Length: 10") + E),
    ("cl-long-1000", head(b"Content-Length: 1000") + E),
    ("no-framing", head() + E),
    ("chunked", head(TE) + chunked(E)),
    ("chunk-junk", head(TE) + chunked(E, b"%x junk")),
    ("chunk-0x", head(TE) + chunked(E, b"0x%x")),
    ("chunk-plus", head(TE) + chunked(E, b"+%x")),
    ("chunk-underscore", head(TE) + b"4_4\r\n" + E + b"\r\n0\r\n\r\n"),
    ("chunk-ext", head(TE) + chunked(E, b"%x;a=b")),
    ("chunk-sp-ext", head(TE) + chunked(E, b"%x ;a=b")),
    ("chunk-lead-sp", head(TE) + chunked(E, b" %x")),
    ("chunk-neg", head(TE) + chunked(E, b"-%x")),
    ("chunk-upper", head(TE) + b"44\r\n" + E + b"\r\n0\r\n\r\n"),
    ("chunk-no-crlf", head(TE) + b"44\r\n" + E + b"0\r\n\r\n"),
    ("chunk-bad-crlf", head(TE) + b"44\r\n" + E + b"XX0\r\n\r\n"),
    ("chunk-lf-only", head(TE) + chunked(E, eol=b"\n")),
    ("chunk-bare-cr", head(TE) + chunked(E, eol=b"\r")),
    ("chunk-no-last", head(TE) + b"44\r\n" + E + b"\r\n"),
    ("chunk-bad-trailer", head(TE) + b"44\r\n" + E + b"\r\n0\r\nNoColon\r\n\r\n"),
    ("chunk-split-2", head(TE) + b"22\r\n" + E[:34] + b"\r\n22\r\n" + E[34:] + b"\r\n0\r\n\r\n"),
    ("chunk-too-long", head(TE) + b"99\r\n" + E + b"\r\n0\r\n\r\n"),
    ("chunk-huge", head(TE) + b"fffffffffffffffffff\r\n" + E + b"\r\n0\r\n\r\n"),
    ("te-chunked-upper", head(b"Transfer-Encoding: CHUNKED") + chunked(E)),
    ("te-chunked-identity", head(b"Transfer-Encoding: chunked, identity") + chunked(E)),
    ("te-identity-chunked", head(b"Transfer-Encoding: identity, chunked") + chunked(E)),
    ("te-two-chunked-identity", head(TE, b"Transfer-Encoding: identity") + chunked(E)),
    ("te-two-identity-chunked", head(b"Transfer-Encoding: identity", TE) + chunked(E)),
    ("te-identity", head(b"Transfer-Encoding: identity", CL) + E),
    ("te-identity-nocl", head(b"Transfer-Encoding: identity") + E),
    ("te-xchunked", head(b"Transfer-Encoding: xchunked") + chunked(E)),
    ("te-chunked-sp", head(b"Transfer-Encoding:  chunked ") + chunked(E)),
    ("te-gzip-chunked", head(b"Transfer-Encoding: gzip, chunked") + chunked(GZ)),
    ("te-gzip", head(b"Transfer-Encoding: gzip") + GZ),
    ("te-chunked-gzip", head(b"Transfer-Encoding: chunked, gzip") + GZ),
    ("te-chunked-plain-gzip-label", head(b"Transfer-Encoding: gzip, chunked") + chunked(E)),
    ("te-chunked-cl", head(b"Content-Length: 10", TE) + chunked(E)),
    ("te-chunked-cl-big", head(b"Content-Length: 1000", TE) + chunked(E)),
    ("te-chunked-http10", head(TE, status=b"HTTP/1.0 200 OK") + chunked(E)),
    ("ce-gzip", head(b"Content-Encoding: gzip", b"Content-Length: %d" % len(GZ)) + GZ),
    ("http09", E),
    ("http09-lf", b"\n" + E),
    ("http09-prefix", b"HTTX/1.1 200 OK\r\n\r\n" + E),
    ("101-unrequested", head(status=b"HTTP/1.1 101 Switching Protocols") + E),
    ("101-unrequested-cl", head(b"Upgrade: websocket", status=b"HTTP/1.1 101 Switching") + head(CL) + E),
    ("101-then-200", head(status=b"HTTP/1.1 101 Switching Protocols") + head(CL) + E),
    ("100-then-200", head(status=b"HTTP/1.1 100 Continue") + head(CL) + E),
    ("102-then-200", head(status=b"HTTP/1.1 102 Processing") + head(CL) + E),
    ("1xx-body", head(CL, status=b"HTTP/1.1 150 Odd") + E),
    ("204-body", head(CL, status=b"HTTP/1.1 204 No Content") + E),
    ("304-body", head(CL, status=b"HTTP/1.1 304 Not Modified") + E),
    ("lead-crlf", b"\r\n" + head(CL) + E),
    ("lead-junk-line", b"garbage\r\n" + head(CL) + E),
    # Length 10 against a 68-byte body: "10B" means the header was honoured,
    # "EICAR" that it was not (read to the end of the stream).
    ("cl10-no-colon-before", head(b"NoColon", b"Content-Length: 10") + E),
    ("cl10-sp-colon-before", head(b"X-Foo : bar", b"Content-Length: 10") + E),
    ("cl10-sp-colon", head(b"Content-Length : 10") + E),
    ("cl10-bare-cr-before", head(b"X-A: b\rContent-Length: 10") + E),
    ("cl10-nul-name-before", head(b"X-F\0oo: ab", b"Content-Length: 10") + E),
    ("cl10-nul-value", head(b"Content-Length: 1\x000") + E),
    ("cl10-plus", head(b"Content-Length: +10") + E),
    ("cl10-junk", head(b"Content-Length: 10abc") + E),
    ("cl10-fold", head(b"Content-Length:", b" 10") + E),
    ("cl10-underscore", head(b"Content-Length: 1_0") + E),
    ("cl10-fold-first", head(b" Content-Length: 10") + E),
    ("cl10-bad-name-before", head(b"Bad(Name): x", b"Content-Length: 10") + E),
    ("cl10-empty-line-cr", head(b"X-A: b\r\rContent-Length: 10") + E),
    ("te-after-no-colon", head(b"NoColon", TE) + chunked(E)),
    ("status-bare-cr-reason", head(CL, status=b"HTTP/1.1 200 O\rK") + E),
    ("crlf-cr-end", head(CL) + b"\r" + E),
]

CLIENTS = {
    "curl": ["curl", "-s", "-o", "{out}", "--max-time", "5", "{url}"],
    "curl-c": ["curl", "-s", "--compressed", "-o", "{out}", "--max-time", "5", "{url}"],
    "wget": ["wget", "-q", "--tries=1", "--timeout=5", "-O", "{out}", "{url}"],
    "urllib": [sys.executable, "-c",
               "import sys,urllib.request as u\n"
               "d=u.urlopen(sys.argv[1],timeout=5).read()\n"
               "open(sys.argv[2],'wb').write(d)", "{url}", "{out}"],
    "requests": [sys.executable, "-c",
                 "import sys,requests\n"
                 "r=requests.get(sys.argv[1],timeout=5)\n"
                 "open(sys.argv[2],'wb').write(r.content)", "{url}", "{out}"],
}


class Server:
    """Serves one byte string per connection, then closes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.data = b""
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            c, _ = self.sock.accept()
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        c.settimeout(3)
        got = b""
        try:
            while b"\r\n\r\n" not in got:
                b = c.recv(4096)
                if not b:
                    break
                got += b
            c.sendall(self.data)
            c.shutdown(socket.SHUT_WR)
            c.recv(65536)
        except OSError:
            pass
        c.close()


def verdict(path, rc):
    try:
        with open(path, "rb") as f:
            d = f.read()
    except OSError:
        d = b""
    if d == EICAR:
        s = "EICAR"
    elif EICAR in d:
        s = "+EICAR%d" % len(d)
    elif not d:
        s = "-"
    else:
        s = "%dB" % len(d)
    return "%s/%d" % (s, rc)


def main():
    names = [a for a in sys.argv[1:] if not a.startswith("-")]
    if "--list" in sys.argv:
        for n, _ in CASES:
            print(n)
        return
    srv = Server()
    url = "http://127.0.0.1:%d/eicar.com" % srv.port
    print("%-28s" % "case" + "".join("%-14s" % c for c in CLIENTS))
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in CASES:
            if names and name not in names:
                continue
            srv.data = data
            row = "%-28s" % name
            for cname, argv in CLIENTS.items():
                out = os.path.join(tmp, cname)
                if os.path.exists(out):
                    os.unlink(out)
                cmd = [a.format(out=out, url=url) for a in argv]
                try:
                    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        timeout=15).returncode
                except subprocess.TimeoutExpired:
                    rc = -9
                row += "%-14s" % verdict(out, rc)
            print(row, flush=True)


if __name__ == "__main__":
    main()
