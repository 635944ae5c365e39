#!/usr/bin/python3
"""Ground truth for content codings: what real clients save.

Serves EICAR from 127.0.0.1 in many content-coding variants (raw socket, so
every byte and every segment boundary is ours), runs curl (plain and
--compressed), wget (plain and --compression=auto), Python urllib (no
decoding) and Python requests (streamed, so what an application writing
chunks to disk keeps before an error counts too), and records for each case
and client whether the saved bytes contain EICAR.

With --decoder (default on when gcc is found), it also builds dpi/codings.c
as a shared object and decodes each case's body with the sluice chain
(codings_add for every coding header in order, then the de-chunked body in
the same segments the server sent), and checks the rule: the chain yields
EICAR, or reports a problem (an anomaly, blocked by default), in every case
where some client saved EICAR.

    tests/evasion/probe_codings_clients.py [--json FILE] [--no-decoder]

Exit status 1 if the rule is broken for some case.
"""
import argparse
import ctypes
import gzip
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import brotli  # python3-brotli, the one urllib3 uses for br

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def gz(data):
    return gzip.compress(data, mtime=0)


def zl(data):
    return zlib.compress(data)


def raw(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def zst(data):
    return subprocess.run(["zstd", "-q", "-c", "-"], input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def chunked(pieces):
    out = b""
    for p in pieces:
        out += b"%x\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n\r\n"


class Case:
    """headers: (name, value) in order; body: the body after de-chunking;
    cuts: offsets in the body where the server pauses (a new segment);
    chunks: send chunked, with these chunk boundaries (offsets)."""

    def __init__(self, name, headers, body, cuts=(), chunks=None):
        self.name, self.headers, self.body = name, headers, body
        self.cuts, self.chunks = list(cuts), chunks

    def segments(self):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        for k, v in self.headers:
            head += k.encode() + b": " + v.encode() + b"\r\n"
        if self.chunks is None:
            head += b"Content-Length: %d\r\n" % len(self.body)
        elif not any(k.lower() == "transfer-encoding" for k, _ in self.headers):
            head += b"Transfer-Encoding: chunked\r\n"
        head += b"Connection: close\r\n\r\n"
        bounds = [0] + sorted(set(self.cuts)) + [len(self.body)]
        pieces = [self.body[a:b] for a, b in zip(bounds, bounds[1:])]
        if self.chunks is None:
            return [head] + pieces
        # Chunk boundaries at self.chunks; each cut also starts a new segment.
        cb = [0] + sorted(set(self.chunks)) + [len(self.body)]
        chunks = [self.body[a:b] for a, b in zip(cb, cb[1:]) if b > a]
        wire = chunked(chunks)
        # One segment per chunk, so a chunk boundary is also a read boundary.
        segs, off = [head], 0
        for c in chunks:
            n = len(b"%x\r\n" % len(c)) + len(c) + 2
            segs.append(wire[off:off + n])
            off += n
        segs.append(wire[off:])
        return segs


def zlib_looking_raw(payload):
    """Raw deflate whose first two bytes pass zlib's header check: a stored
    block of one byte 'X', then the payload as raw deflate."""
    return bytes([0x78, 0x01, 0x00, 0xFE, 0xFF]) + b"X" + raw(payload)


def cases():
    e = EICAR
    # zstd stores short literals as they are: pad EICAR with letters so
    # the literals are Huffman-coded and EICAR is not in the encoded bytes.
    rnd = random.Random(1)
    padded = bytes(rnd.choice(b"abcdefghijklmnop") for _ in range(2000)) + e
    m1, m2 = gz(b"harmless first member\n"), gz(e)
    bomb = gz(b"\0" * (16 << 20) + e)
    six = e
    for _ in range(6):
        six = gz(six)
    return [
        Case("plain-gzip", [("Content-Encoding", "gzip")], gz(e)),
        Case("x-gzip", [("Content-Encoding", "x-gzip")], gz(e)),
        Case("br", [("Content-Encoding", "br")], brotli.compress(e)),
        Case("zstd", [("Content-Encoding", "zstd")], zst(padded)),
        Case("zstd-2-frames", [("Content-Encoding", "zstd")], zst(b"harmless\n") + zst(padded),
             cuts=[5]),
        Case("gzip,gzip-one-header", [("Content-Encoding", "gzip, gzip")], gz(gz(e))),
        Case("gzip+gzip-two-headers", [("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")],
             gz(gz(e))),
        Case("deflate,gzip", [("Content-Encoding", "deflate, gzip")], gz(zl(e))),
        Case("deflate+gzip-two-headers", [("Content-Encoding", "deflate"),
                                          ("Content-Encoding", "gzip")], gz(zl(e))),
        Case("gzip+deflate-two-headers", [("Content-Encoding", "gzip"),
                                          ("Content-Encoding", "deflate")], gz(zl(e))),
        Case("br,gzip", [("Content-Encoding", "br, gzip")], gz(brotli.compress(e))),
        Case("zlib-labelled-gzip", [("Content-Encoding", "gzip")], zl(e)),
        Case("raw-labelled-deflate", [("Content-Encoding", "deflate")], raw(e)),
        Case("zlib-labelled-deflate", [("Content-Encoding", "deflate")], zl(e)),
        Case("raw-looking-like-zlib", [("Content-Encoding", "deflate")], zlib_looking_raw(e)),
        Case("raw-after-1-byte-segment", [("Content-Encoding", "deflate")], b"\x07" + raw(e),
             cuts=[1]),
        Case("2-members-one-segment", [("Content-Encoding", "gzip")], m1 + m2),
        Case("2-members-split-odd", [("Content-Encoding", "gzip")], m1 + m2,
             cuts=[7, len(m1) - 3, len(m1) + 5]),
        Case("2-members-split-at-boundary", [("Content-Encoding", "gzip")], m1 + m2,
             cuts=[len(m1)]),
        Case("2-members-chunked-odd", [("Content-Encoding", "gzip")], m1 + m2,
             chunks=[len(m1) + 3]),
        Case("member-then-garbage", [("Content-Encoding", "gzip")], m2 + b"garbage\n"),
        Case("harmless-member-then-garbage-then-eicar", [("Content-Encoding", "gzip")],
             m1 + b"garbage" + m2),
        Case("te-gzip-chunked", [("Transfer-Encoding", "gzip, chunked")], gz(e),
             chunks=[5]),
        # Which coding is undone first when both headers carry one? Every order.
        Case("te-first-body-zl(gz)", [("Transfer-Encoding", "gzip, chunked"),
                                      ("Content-Encoding", "deflate")], zl(gz(e)), chunks=[5]),
        Case("te-first-body-gz(zl)", [("Transfer-Encoding", "gzip, chunked"),
                                      ("Content-Encoding", "deflate")], gz(zl(e)), chunks=[5]),
        Case("ce-first-body-zl(gz)", [("Content-Encoding", "deflate"),
                                      ("Transfer-Encoding", "gzip, chunked")], zl(gz(e)),
             chunks=[5]),
        Case("ce-first-body-gz(zl)", [("Content-Encoding", "deflate"),
                                      ("Transfer-Encoding", "gzip, chunked")], gz(zl(e)),
             chunks=[5]),
        Case("gzip-6-stacked", [("Content-Encoding", "gzip, gzip, gzip, gzip, gzip, gzip")], six),
        Case("gzip-bomb-16k-then-eicar", [("Content-Encoding", "gzip")], bomb),
        Case("gzip-trailer-cut", [("Content-Encoding", "gzip")], gz(e)[:-4]),
        Case("unknown-coding", [("Content-Encoding", "compress")], gz(e)),
    ]


class Server:
    def __init__(self, table):
        self.table = {("/" + c.name): c for c in table}
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn):
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            req = b""
            while b"\r\n\r\n" not in req:
                d = conn.recv(4096)
                if not d:
                    return
                req += d
            path = req.split(b" ")[1].decode()
            case = self.table.get(path)
            if case is None:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                return
            for seg in case.segments():
                if seg:
                    conn.sendall(seg)
                    time.sleep(0.05)
        except OSError:
            pass
        finally:
            conn.close()


PYCLIENT_URLLIB = "import sys,urllib.request;sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())"
PYCLIENT_REQUESTS = """
import sys, requests
r = requests.get(sys.argv[1], stream=True)
out = sys.stdout.buffer
try:
    for chunk in r.iter_content(1024):
        out.write(chunk)
except Exception as e:
    sys.stderr.write(repr(e))
    sys.exit(3)
"""

CLIENTS = {
    "curl": lambda url, out: ["curl", "-s", "-o", out, url],
    "curl --compressed": lambda url, out: ["curl", "-s", "--compressed", "-o", out, url],
    "wget": lambda url, out: ["wget", "-q", "-O", out, url],
    "wget --compression=auto": lambda url, out: ["wget", "-q", "--compression=auto", "-O", out,
                                                 url],
    "urllib": lambda url, out: ["/usr/bin/python3", "-c", PYCLIENT_URLLIB, url],
    "requests": lambda url, out: ["/usr/bin/python3", "-c", PYCLIENT_REQUESTS, url],
}


def run_client(name, url, tmp):
    out = os.path.join(tmp, "out")
    if os.path.exists(out):
        os.unlink(out)
    argv = CLIENTS[name](url, out)
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    except subprocess.TimeoutExpired:
        return {"eicar": False, "rc": "timeout", "size": 0}
    data = p.stdout
    if os.path.exists(out):
        with open(out, "rb") as f:
            data = f.read()
    return {"eicar": EICAR in data, "rc": p.returncode, "size": len(data)}


class Decoder:
    """dpi/codings.c through ctypes, built here as a shared object."""

    def __init__(self, tmp):
        so = os.path.join(tmp, "codings.so")
        subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", so,
                        os.path.join(TOP, "dpi", "codings.c"), "-lz", "-lbrotlidec", "-lzstd"],
                       check=True)
        self.lib = ctypes.CDLL(so)
        self.lib.codings_new.restype = ctypes.c_void_p
        self.lib.codings_new.argtypes = [ctypes.c_void_p]
        self.lib.codings_add.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self.cb_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8),
                                        ctypes.c_size_t)
        self.lib.codings_feed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                          self.cb_type, ctypes.c_void_p]
        self.lib.codings_finish.argtypes = [ctypes.c_void_p]
        self.lib.codings_problem.restype = ctypes.c_char_p
        self.lib.codings_problem.argtypes = [ctypes.c_void_p]
        self.lib.codings_free.argtypes = [ctypes.c_void_p]

    def decode(self, case):
        # The policy defaults: limits.decoded 4 GiB, decoded_ratio 100, body 16 MiB.
        lim = (ctypes.c_uint64 * 3)(4 << 30, 100, 16 << 20)
        c = self.lib.codings_new(ctypes.byref(lim))
        out = bytearray()

        def take(_ctx, p, n):
            out.extend(ctypes.string_at(p, n))

        cb = self.cb_type(take)
        # The order curl undoes them in, whatever the order of the headers:
        # transfer codings first, then content codings, each list backwards.
        # So the list in the order applied: Content-Encoding values, then
        # Transfer-Encoding values.
        ce = [v for k, v in case.headers if k.lower() == "content-encoding"]
        te = [v for k, v in case.headers if k.lower() == "transfer-encoding"]
        for v, is_te in [(v, 0) for v in ce] + [(v, 1) for v in te]:
            if self.lib.codings_add(c, v.encode(), is_te):
                break
        bounds = [0] + sorted(set(case.cuts + (case.chunks or []))) + [len(case.body)]
        for a, b in zip(bounds, bounds[1:]):
            if self.lib.codings_feed(c, case.body[a:b], b - a, cb, None):
                break
        self.lib.codings_finish(c)
        problem = self.lib.codings_problem(c)
        self.lib.codings_free(c)
        return {"eicar": EICAR in out, "problem": problem.decode() if problem else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--no-decoder", action="store_true")
    args = ap.parse_args()
    table = cases()
    srv = Server(table)
    results, broken = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        dec = None if args.no_decoder else Decoder(tmp)
        names = list(CLIENTS)
        print("%-42s %s %s" % ("case", " ".join("%-6s" % n.split()[0][:6] + ("+" if " " in n else " ")
                                               for n in names), "sluice"))
        for case in table:
            url = "http://127.0.0.1:%d/%s" % (srv.port, case.name)
            row = {"case": case.name, "clients": {}}
            for n in names:
                row["clients"][n] = run_client(n, url, tmp)
            any_eicar = any(r["eicar"] for r in row["clients"].values())
            verdict = ""
            if dec:
                row["sluice"] = dec.decode(case)
                s = row["sluice"]
                verdict = "EICAR" if s["eicar"] else "-"
                if s["problem"]:
                    verdict += " (problem: %s)" % s["problem"]
                if any_eicar and not s["eicar"] and not s["problem"]:
                    verdict += "  <-- MISSED"
                    broken += 1
            cells = " ".join("%-7s" % ("EICAR" if row["clients"][n]["eicar"] else "-")
                             for n in names)
            print("%-42s %s %s" % (case.name, cells, verdict))
            results.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
