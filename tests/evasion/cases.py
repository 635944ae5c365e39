"""The evasion suite's catalogue: every case is the exact bytes a hostile
server sends for a request (a raw socket server, so any malformed HTTP is
possible), or the exact request a client sends for an upload, with the real
clients it applies to. Whether a client really gets EICAR out of it is never
assumed here: tests/evasion/run finds out by running the clients.

Imported by server.py inside the test image (python3, python3-brotli and the
zstd command are there) and by the runner on the host, which only reads the
metadata: the bytes are made lazily, when a case is served.

A response is a list of parts: bytes are written as they are (TCP_NODELAY),
a float is a pause in seconds, so that the bytes around it leave in separate
segments."""
import base64
import gzip
import io
import json
import os
import subprocess
import tarfile
import zipfile
import zlib

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLEAN = b"".join(b"clean line %04d of a harmless text file, nothing to see\n" % i
                 for i in range(120))
GAP = 0.05  # seconds between writes that must leave as separate segments

# Clients of a plain download (names the runner knows how to run).
GET_CLIENTS = ["curl", "curlc", "wget", "urllib", "requests"]
CATEGORIES = ["framing", "coding", "archive", "upload", "websocket", "h2c", "connect", "join",
              "long", "control", "tcp"]


class Case:
    """name: /case/NAME on the server; cat: one of CATEGORIES; clients: the
    client names that apply (or a dict name -> argv template for case-specific
    commands, with {url} {out} {in} {srv} {port} filled in by the runner);
    respond(req) -> parts; expect: 'eicar' or the clean bytes a control must
    deliver; keep: serve more requests on the connection; port: a port of its
    own (HTTP/2 with prior knowledge has no readable path before HPACK);
    files: input files the clients read, name -> bytes."""

    def __init__(self, name, cat, respond=None, clients=None, expect="eicar", keep=False,
                 note="", kind="http", files=None, port=None, upload=None):
        self.name = name
        self.cat = cat
        self.respond = respond
        self.clients = clients if clients is not None else list(GET_CLIENTS)
        self.expect = expect
        self.keep = keep
        self.note = note
        self.kind = kind
        self.files = files or {}
        self.port = port
        self.upload = upload

    @property
    def control(self):
        return self.expect != "eicar"


CASES = []


def add(*a, **kw):
    c = Case(*a, **kw)
    assert c.cat in CATEGORIES, c.cat
    assert all(x.name != c.name for x in CASES), c.name
    CASES.append(c)
    return c


def by_name():
    return {c.name: c for c in CASES}


# --- building blocks ---------------------------------------------------------------

def head(status=b"HTTP/1.1 200 OK", headers=(), eol=b"\r\n"):
    return status + eol + b"".join(h + eol for h in headers) + eol


def cl(body):
    return b"Content-Length: %d" % len(body)


def plain(status=b"HTTP/1.1 200 OK", headers=None, body=EICAR, eol=b"\r\n"):
    hs = [cl(body)] if headers is None else headers
    return lambda req: [head(status, hs, eol) + body]


def chunks(body, size=0x22, fmt=b"%x", eol=b"\r\n", last=b"0\r\n\r\n"):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += (fmt % len(part)) + eol + part + b"\r\n"
    return out + last


def chunked(body=EICAR, te=(b"Transfer-Encoding: chunked",), extra=(), **kw):
    return lambda req: [head(b"HTTP/1.1 200 OK", list(te) + list(extra)) + chunks(body, **kw)]


def gz(data, level=9):
    return gzip.compress(data, level, mtime=0)


def zl(data):
    return zlib.compress(data, 9)


def raw_deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def br(data):
    import brotli  # python3-brotli, in the test image
    return brotli.compress(data)


def zst(data):
    return subprocess.run(["zstd", "-q", "-c", "-19"], input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def encoded(codings, body=EICAR, label=None, extra=()):
    """body encoded with codings applied in order, labelled with label
    (default: the codings' names in one Content-Encoding header)."""
    def respond(req):
        data = body
        for fn in codings:
            data = fn(data)
        lab = label if label is not None else \
            [b"Content-Encoding: " + b", ".join(NAMES[fn] for fn in codings)]
        return [head(b"HTTP/1.1 200 OK", list(lab) + [cl(data)] + list(extra)) + data]
    return respond


NAMES = {gz: b"gzip", zl: b"deflate", br: b"br", zst: b"zstd", raw_deflate: b"deflate"}


# --- lenient HTTP framing -------------------------------------------------------------

def framing():
    E = EICAR
    add("plain", "framing", plain(), note="baseline: Content-Length, nothing odd")
    add("http12", "framing", plain(b"HTTP/1.2 200 OK"))
    add("http11-lower", "framing", plain(b"http/1.1 200 OK"))
    add("status-200ok", "framing", plain(b"HTTP/1.1 200OK"))
    add("status-tab", "framing", plain(b"HTTP/1.1\t200 OK"))
    add("status-2sp", "framing", plain(b"HTTP/1.1  200 OK"))
    add("status-noreason", "framing", plain(b"HTTP/1.1 200"))
    add("status-404", "framing", plain(b"HTTP/1.1 404 Not Found"))
    add("status-999", "framing", plain(b"HTTP/1.1 999 Odd"))
    add("status-206-unasked", "framing",
        plain(headers=[cl(E), b"Content-Range: bytes 0-67/68"], status=b"HTTP/1.1 206 Partial"))
    add("http10-close", "framing", lambda r: [b"HTTP/1.0 200 OK\r\n\r\n" + E])
    add("http11-nolength", "framing",
        lambda r: [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + E])
    add("lf-only", "framing", plain(eol=b"\n"))
    add("bare-cr-header", "framing",
        lambda r: [b"HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\nContent-Length: 68\r\n\r\n" + E])
    add("cr-cr-lf", "framing", plain(eol=b"\r\r\n"))
    add("hdr-space-colon", "framing", plain(headers=[b"X-Foo : bar", b"Content-Length : 68"]))
    add("hdr-nocolon", "framing", plain(headers=[b"this line has no colon", cl(E)]))
    add("hdr-nul", "framing", plain(headers=[b"X-Foo: a\x00b", cl(E)]))
    add("hdr-9000", "framing", plain(headers=[b"X-Long: " + b"a" * 9000, cl(E)]))
    add("hdr-130", "framing", plain(headers=[b"X-H%d: v" % i for i in range(130)] + [cl(E)]))
    add("head-70k", "framing",
        plain(headers=[b"X-Big%d: " % i + b"b" * 990 for i in range(70)] + [cl(E)]))
    add("hdr-fold", "framing", plain(headers=[b"X-Foo: a", b" folded", cl(E)]))
    add("hdr-leading-space", "framing", plain(headers=[b" X-Foo: a", cl(E)]))
    add("hdr-utf8", "framing", plain(headers=[b"X-\xc3\xa9t\xc3\xa9: \xff\xfe", cl(E)]))
    add("cl-plus", "framing", plain(headers=[b"Content-Length: +68"]))
    add("cl-list", "framing", plain(headers=[b"Content-Length: 68, 1000"]))
    add("cl-list-same", "framing", plain(headers=[b"Content-Length: 68, 68"]))
    add("cl-two-diff", "framing", plain(headers=[b"Content-Length: 68", b"Content-Length: 1000"]))
    add("cl-two-diff-rev", "framing",
        plain(headers=[b"Content-Length: 1000", b"Content-Length: 68"]))
    add("cl-two-same", "framing", plain(headers=[b"Content-Length: 68", b"Content-Length: 68"]))
    add("cl-zeros", "framing", plain(headers=[b"Content-Length: 000068"]))
    add("cl-space-tail", "framing", plain(headers=[b"Content-Length: 68 "]))
    add("cl-junk-tail", "framing", plain(headers=[b"Content-Length: 68abc"]))
    add("cl-too-long", "framing", lambda r: [head(headers=[b"Content-Length: 1000"]) + E],
        note="Content-Length larger than the body, then close")
    add("cl-lower-name", "framing", plain(headers=[b"content-length: 68"]))
    add("chunked", "framing", chunked(), note="baseline chunked")
    add("chunk-ext-junk", "framing", chunked(fmt=b"%x junk"))
    add("chunk-ext", "framing", chunked(fmt=b"%x;name=value"))
    add("chunk-0x", "framing", chunked(fmt=b"0x%x"))
    add("chunk-plus", "framing", chunked(fmt=b"+%x"))
    add("chunk-underscore", "framing", lambda r: [
        head(headers=[b"Transfer-Encoding: chunked"]) +
        b"2_2\r\n" + E[:34] + b"\r\n2_2\r\n" + E[34:] + b"\r\n0\r\n\r\n"])
    add("chunk-zeros", "framing", chunked(fmt=b"000%x"))
    add("chunk-upper", "framing", chunked(size=0x2a, fmt=b"%X"))
    add("chunk-crcrlf", "framing", chunked(eol=b"\r\r\n"))
    add("chunk-lf", "framing", chunked(eol=b"\n"))
    add("chunk-nolast", "framing", chunked(last=b""), note="no last chunk, then close")
    add("chunk-trailer", "framing", chunked(last=b"0\r\nX-Trailer: t\r\n\r\n"))
    add("chunk-1byte", "framing", lambda r: [
        head(headers=[b"Transfer-Encoding: chunked"]) + chunks(E, size=1)])
    add("te-chunked-identity", "framing", chunked(te=[b"Transfer-Encoding: chunked, identity"]))
    add("te-identity-chunked", "framing", chunked(te=[b"Transfer-Encoding: identity, chunked"]))
    add("te-chunked-then-identity", "framing",
        chunked(te=[b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"]))
    add("te-identity-then-chunked", "framing",
        chunked(te=[b"Transfer-Encoding: identity", b"Transfer-Encoding: chunked"]))
    add("te-upper", "framing", chunked(te=[b"Transfer-Encoding: CHUNKED"]))
    add("te-spaces", "framing", chunked(te=[b"Transfer-Encoding:   chunked   "]))
    add("te-fold", "framing", chunked(te=[b"Transfer-Encoding:", b" chunked"]))
    add("te-and-cl", "framing", chunked(te=[b"Content-Length: 20", b"Transfer-Encoding: chunked"]))
    add("te-xchunked", "framing", chunked(te=[b"Transfer-Encoding: xchunked"]))
    add("te-chunked-http10", "framing", lambda r: [
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks(E)])
    add("http09", "framing", lambda r: [E], note="no status line at all")
    add("unasked-101", "framing", lambda r: [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n" + E])
    add("interim-100", "framing", lambda r: [
        b"HTTP/1.1 100 Continue\r\n\r\n" + head(headers=[cl(E)]) + E])
    add("interim-103", "framing", lambda r: [
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + head(headers=[cl(E)]) + E])
    add("interim-many", "framing", lambda r: [
        b"HTTP/1.1 100 Continue\r\n\r\n" * 20 + head(headers=[cl(E)]) + E])
    add("lead-crlf", "framing", lambda r: [b"\r\n\r\n" + head(headers=[cl(E)]) + E])
    add("lead-junk", "framing", lambda r: [b"junk\r\n" + head(headers=[cl(E)]) + E])
    add("head-1byte-segs", "framing", lambda r: sum(
        ([bytes([b]), 0.002] for b in head(headers=[cl(E)])), []) + [E],
        note="the head one byte per segment")
    add("body-1byte-segs", "framing", lambda r: [head(headers=[cl(E)])] + sum(
        ([bytes([b]), 0.002] for b in E), []))
    add("head-body-split", "framing", lambda r: [
        head(headers=[cl(E)])[:-1], GAP, b"\n" + E[:10], GAP, E[10:]])
    add("head-304-body", "framing", plain(b"HTTP/1.1 304 Not Modified"))
    add("head-204-body", "framing", plain(b"HTTP/1.1 204 No Content"))


# --- content and transfer codings --------------------------------------------------------

def codings():
    E = EICAR
    add("gzip", "coding", encoded([gz]), note="baseline gzip")
    add("x-gzip", "coding", encoded([gz], label=[b"Content-Encoding: x-gzip"]))
    add("gzip-upper", "coding", encoded([gz], label=[b"Content-Encoding: GZIP"]))
    add("deflate-zlib", "coding", encoded([zl]))
    add("deflate-raw", "coding", encoded([raw_deflate]))
    add("br", "coding", encoded([br]))
    add("zstd", "coding", encoded([zst], CLEAN[:300] + EICAR),
        note="zstd stores a short body raw: clean text first")
    add("gzip-gzip", "coding", encoded([gz, gz]))
    add("deflate-gzip", "coding", encoded([zl, gz]))
    add("gzip-br", "coding", encoded([gz, br]))
    add("zstd-gzip-br", "coding", encoded([zst, gz, br]))
    add("gzip-2headers", "coding",
        encoded([gz, gz], label=[b"Content-Encoding: gzip", b"Content-Encoding: gzip"]))
    add("gzip-identity", "coding", encoded([gz], label=[b"Content-Encoding: gzip, identity"]))
    add("deflate-raw-zlibish", "coding", encoded([_raw_zlibish]),
        note="raw deflate whose first two bytes are a valid zlib header")
    add("zlib-as-gzip", "coding", encoded([zl], label=[b"Content-Encoding: gzip"]))
    add("raw-as-gzip", "coding", encoded([raw_deflate], label=[b"Content-Encoding: gzip"]))
    add("gzip-as-deflate", "coding", encoded([gz], label=[b"Content-Encoding: deflate"]))
    add("ce-unknown", "coding", plain(headers=[b"Content-Encoding: foo", cl(E)]))
    add("ce-identity", "coding", plain(headers=[b"Content-Encoding: identity", cl(E)]))
    add("gzip-fields", "coding", lambda r: _gz_fields())
    add("gzip-badcrc", "coding", lambda r: _gz_resp(gz(E)[:-8] + b"\0" * 8))
    add("gzip-truncated", "coding", lambda r: _gz_resp(gz(E)[:-8]))
    add("gzip-trailing-junk", "coding", lambda r: _gz_resp(gz(E) + b"trailing junk"))
    add("gzip-2members", "coding", lambda r: _gz_resp(gz(E[:30]) + gz(E[30:])))
    add("gzip-member-split-chunk", "coding", lambda r: _gz_member_split(True),
        note="second member starts in another chunk and segment")
    add("gzip-member-split-seg", "coding", lambda r: _gz_member_split(False))
    add("gzip-chunked", "coding", lambda r: [
        head(headers=[b"Content-Encoding: gzip", b"Transfer-Encoding: chunked"]) +
        chunks(gz(E), size=7)])
    add("te-gzip-chunked", "coding", lambda r: [
        head(headers=[b"Transfer-Encoding: gzip, chunked"]) + chunks(gz(E))])
    add("te-gzip", "coding", lambda r: [
        head(headers=[b"Transfer-Encoding: gzip", b"Connection: close"]) + gz(E)])
    add("te-deflate-chunked", "coding", lambda r: [
        head(headers=[b"Transfer-Encoding: deflate, chunked"]) + chunks(zl(E))])
    add("gzip-bomb-eicar", "coding", lambda r: _gz_resp(gz(b"\0" * (16 << 20) + E)),
        note="16 MiB of zeros, then EICAR, in about 16 KiB of gzip")
    add("br-chunked", "coding", lambda r: [
        head(headers=[b"Content-Encoding: br", b"Transfer-Encoding: chunked"]) +
        chunks(br(E), size=5)])
    add("zstd-2frames", "coding", lambda r: [
        head(headers=[b"Content-Encoding: zstd", cl(zst(E[:30]) + zst(E[30:]))]) +
        zst(E[:30]) + zst(E[30:])])
    add("gzip-nolength", "coding", lambda r: [
        head(headers=[b"Content-Encoding: gzip", b"Connection: close"]) + gz(E)])
    add("gzip-1byte-segs", "coding", lambda r: [
        head(headers=[b"Content-Encoding: gzip", cl(gz(E))])] +
        sum(([bytes([b]), 0.002] for b in gz(E)), []))


def _raw_zlibish(data):
    """A stored block of one byte whose header byte (0x78: not final, stored,
    padding bits set) and LEN (0x0001) read as the zlib header 78 01, then
    the data raw-deflated."""
    return b"\x78\x01\x00\xfe\xff" + b"A" + raw_deflate(data)


NAMES[_raw_zlibish] = b"deflate"


def _gz_resp(data, extra=()):
    return [head(headers=[b"Content-Encoding: gzip", cl(data)] + list(extra)) + data]


def _gz_fields():
    """A gzip member with FEXTRA, FNAME and FCOMMENT set."""
    body = raw_deflate(EICAR)
    hdr = b"\x1f\x8b\x08\x1c\0\0\0\0\x02\xff" + b"\x04\0ab\0\0" + b"name.txt\0" + b"comment\0"
    trailer = zlib.crc32(EICAR).to_bytes(4, "little") + len(EICAR).to_bytes(4, "little")
    return _gz_resp(hdr + body + trailer)


def _gz_member_split(in_chunks):
    m1, m2 = gz(EICAR[:30]), gz(EICAR[30:])
    if in_chunks:
        return [head(headers=[b"Content-Encoding: gzip", b"Transfer-Encoding: chunked"]) +
                b"%x\r\n" % (len(m1) + 3) + m1 + m2[:3] + b"\r\n", GAP,
                b"%x\r\n" % (len(m2) - 3) + m2[3:] + b"\r\n0\r\n\r\n"]
    return [head(headers=[b"Content-Encoding: gzip", cl(m1 + m2)]) + m1 + m2[:2], GAP, m2[2:]]


# --- files inside files ----------------------------------------------------------------

def zipped(files, method=zipfile.ZIP_DEFLATED):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", method) as z:
        for name, data in files:
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data, compress_type=method)
    return b.getvalue()


def tarred(files, mode="w"):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode=mode) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    return b.getvalue()


def archives():
    E = EICAR
    pad = CLEAN

    def serve(make, ctype=b"application/octet-stream"):
        def respond(req):
            data = make()
            return [head(headers=[b"Content-Type: " + ctype, cl(data)]) + data]
        return respond
    add("zip-deflated", "archive", serve(lambda: zipped([("a.txt", pad), ("eicar.com", E)])))
    add("zip-stored", "archive",
        serve(lambda: zipped([("a.txt", pad), ("eicar.com", E)], zipfile.ZIP_STORED)))
    add("zip-bzip2", "archive", serve(lambda: zipped([("eicar.com", E)], zipfile.ZIP_BZIP2)))
    add("zip-nested", "archive",
        serve(lambda: zipped([("inner.zip", zipped([("eicar.com", E)]))])))
    add("tar", "archive", serve(lambda: tarred([("a.txt", pad), ("eicar.com", E)])))
    add("tar-gz", "archive", serve(lambda: tarred([("a.txt", pad), ("eicar.com", E)], "w:gz")))
    add("tar-xz", "archive", serve(lambda: tarred([("eicar.com", E)], "w:xz")))
    add("tar-bz2", "archive", serve(lambda: tarred([("eicar.com", E)], "w:bz2")))
    add("gz-file", "archive", serve(lambda: gz(E), b"application/gzip"))
    add("zip-in-targz", "archive",
        serve(lambda: tarred([("x.zip", zipped([("eicar.com", E)]))], "w:gz")))
    add("zip-gzip-ce", "archive", lambda r: _gz_resp(zipped([("eicar.com", E)])))
    add("zip-chunked", "archive", lambda r: [
        head(headers=[b"Transfer-Encoding: chunked"]) + chunks(zipped([("eicar.com", E)]), 9)])


# --- uploads (the server application decodes) ------------------------------------------------

def _upload_ok(req):
    return [head(headers=[b"Content-Length: 3"]) + b"ok\n"]


def _mp(parts, boundary=b"BOUNDARYxyz"):
    out = b""
    for hs, data in parts:
        out += b"--" + boundary + b"\r\n" + b"".join(h + b"\r\n" for h in hs) + b"\r\n" + data + \
            b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def _qp(data):
    """Quoted-printable with every byte escaped (=XX), in 72-character lines."""
    enc = b"".join(b"=%02X" % c for c in data)
    return b"=\r\n".join(enc[i:i + 72] for i in range(0, len(enc), 72))


def uploads():
    E = EICAR
    b64 = base64.encodebytes(E)
    disp = b'Content-Disposition: form-data; name="file"; filename="e.txt"'
    mp_ct = "multipart/form-data; boundary=BOUNDARYxyz"

    def up(name, clients, files=None, note=""):
        add(name, "upload", _upload_ok, clients=clients, files=files, note=note, kind="upload")

    def raw(body, ctype, extra=()):
        """curl and urllib send the same raw request body."""
        hs = sum((["-H", h] for h in extra), [])
        return {"curl": ["curl", "-sS", "--max-time", "{t}", "-o", "/dev/null", "-H",
                         f"Content-Type: {ctype}", *hs, "--data-binary", "@{in}", "{url}"],
                "urllib": ["python3", "/ev/pyclient.py", "post-raw", "{url}", "{out}", "{in}",
                           ctype, *extra]}
    up("up-plain", raw(E, "application/octet-stream"), {"body": E})
    up("up-put", {"curl": ["curl", "-sS", "--max-time", "{t}", "-o", "/dev/null", "-T", "{in}",
                           "{url}"]}, {"body": E})
    up("up-mp-plain", {"curl": ["curl", "-sS", "--max-time", "{t}", "-o", "/dev/null", "-F",
                                "file=@{in}", "{url}"],
                       "requests": ["python3", "/ev/pyclient.py", "post-files", "{url}", "{out}",
                                    "{in}"]}, {"body": E})
    up("up-mp-b64", {"curl": ["curl", "-sS", "--max-time", "{t}", "-o", "/dev/null", "-F",
                              "file=@{in};encoder=base64", "{url}"],
                     **raw(None, mp_ct)},
       {"body": _mp([([disp, b"Content-Transfer-Encoding: base64"], b64)])})
    up("up-mp-qp", {"curl": ["curl", "-sS", "--max-time", "{t}", "-o", "/dev/null", "-F",
                             "file=@{in};encoder=quoted-printable", "{url}"],
                    **raw(None, mp_ct)},
       {"body": _mp([([disp, b"Content-Transfer-Encoding: quoted-printable"], _qp(E))])})
    up("up-mp-b64-split", raw(None, mp_ct),
       {"body": _mp([([disp, b"Content-Transfer-Encoding: base64"],
                      b"\r\n".join(base64.b64encode(E)[i:i + 4] for i in range(0, 92, 4)))])},
       note="base64 in 4-character lines")
    up("up-mp-field", {"curl": ["curl", "-sS", "--max-time", "{t}", "-o", "/dev/null", "-F",
                                "v=<{in}", "{url}"]}, {"body": E})
    up("up-urlenc", {"curl": ["curl", "-sS", "--max-time", "{t}", "-o", "/dev/null",
                              "--data-urlencode", "v@{in}", "{url}"],
                     "requests": ["python3", "/ev/pyclient.py", "post-form", "{url}", "{out}",
                                  "{in}"]}, {"body": E})
    up("up-urlenc-all", raw(None, "application/x-www-form-urlencoded"),
       {"body": b"v=" + b"".join(b"%%%02X" % c for c in E)}, note="every byte percent-encoded")
    up("up-query", {"curl": ["curl", "-sS", "--max-time", "{t}", "-o", "/dev/null",
                             "{url}?v=" + "".join("%%%02X" % c for c in E)]},
       note="GET with the value in the query string")
    up("up-json", {"requests": ["python3", "/ev/pyclient.py", "post-json", "{url}", "{out}",
                                "{in}"]}, {"body": E}, note="json.dumps escapes the backslash")
    up("up-json-u-all", raw(None, "application/json"),
       {"body": b'{"v": "' + b"".join(b"\\u%04x" % c for c in E) + b'"}'})
    up("up-json-u-some", raw(None, "application/json"),
       {"body": b'{"v": "' + json.dumps(E.decode()).encode()[1:-1].replace(b"$", b"\\u0024") +
        b'"}'})
    up("up-chunked", {"curl": ["curl", "-sS", "--max-time", "{t}", "-o", "/dev/null", "-H",
                               "Transfer-Encoding: chunked", "-H",
                               "Content-Type: application/octet-stream",
                               "--data-binary", "@{in}", "{url}"]},
       {"body": E})
    up("up-gzip-ce", raw(None, "application/octet-stream", ["Content-Encoding: gzip"]),
       {"body": gz(E)}, note="the server application decodes Content-Encoding: gzip")
    up("up-expect-1m", {"curl": ["curl", "-sS", "--max-time", "{t}", "-o", "/dev/null",
                                 "-H", "Expect: 100-continue", "-H",
                                 "Content-Type: application/octet-stream",
                                 "--data-binary", "@{in}", "{url}"]},
       {"body": CLEAN * 150 + E}, note="EICAR after 1 MB, Expect: 100-continue")


# --- WebSocket -------------------------------------------------------------------------

def ws_case(name, frames, clients=("ws", "ws-nocomp"), note="", pmd=False, up=False):
    """frames(comp) -> list of (fin, rsv1, opcode, payload) the server sends; comp
    compresses a message (permessage-deflate, shared context)."""
    add(name, "websocket", None, clients=list(clients), note=note, kind="ws",
        upload=up, files={"body": EICAR} if up else None).ws = (frames, pmd)


def websocket():
    E = EICAR
    ws_case("ws-text", lambda c: [(1, 0, 1, E)])
    ws_case("ws-binary", lambda c: [(1, 0, 2, E)])
    ws_case("ws-fragmented", lambda c: [(0, 0, 2, E[:20]), (0, 0, 0, E[20:40]),
                                        (1, 0, 0, E[40:])])
    ws_case("ws-frag-ping", lambda c: [(0, 0, 2, E[:30]), (1, 0, 9, b"ping"),
                                       (1, 0, 0, E[30:])], note="a ping between fragments")
    ws_case("ws-after-clean", lambda c: [(1, 0, 1, CLEAN), (1, 0, 1, E)])
    ws_case("ws-pmd", lambda c: [(1, 1, 2, c(E))], pmd=True)
    ws_case("ws-pmd-fragmented", lambda c: _ws_frag(c(E), 2), pmd=True)
    ws_case("ws-pmd-takeover", lambda c: [(1, 1, 1, c(E[:40] + b" primes the window")),
                                          (1, 1, 1, c(E))], pmd=True,
            note="the second message refers back into the first")
    ws_case("ws-large", lambda c: [(1, 0, 2, CLEAN * 150 + E)], note="EICAR after 1 MB")
    ws_case("ws-up-text", None, clients=("ws-send", "ws-send-nocomp"), up=True)
    ws_case("ws-up-fragmented", None, clients=("ws-send-frag",), up=True)
    add("ws-clean", "control", None, clients=["ws", "ws-nocomp"], expect=CLEAN,
        kind="ws").ws = (lambda c: [(1, 0, 1, CLEAN)], False)
    add("ws-pmd-clean", "control", None, clients=["ws"], expect=CLEAN,
        kind="ws").ws = (lambda c: [(1, 1, 1, c(CLEAN))], True)


def _ws_frag(data, op):
    n = len(data) // 3 + 1
    parts = [data[i:i + n] for i in range(0, len(data), n)]
    return [(int(i == len(parts) - 1), int(i == 0), op if i == 0 else 0, p)
            for i, p in enumerate(parts)]


# --- HTTP/2 cleartext -----------------------------------------------------------------

H2P = ["curl-h2p", "curl-h2p-c"]
H2U = ["curl-h2u", "curl-h2u-c"]


def h2_case(name, cat, frames, clients, expect="eicar", note=""):
    """frames(stream) -> list of (type, flags, payload) for the response."""
    c = add(name, cat, None, clients=clients, expect=expect, note=note, kind="h2")
    c.h2 = frames
    return c


def hpack_lit(name, value):
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def h2_resp(body=EICAR, data_frames=1, pad=0, ce=None, cont=False):
    def frames(_stream):
        hb = b"\x88" + hpack_lit(b"content-length", b"%d" % len(body))
        if ce:
            hb += hpack_lit(b"content-encoding", ce)
        out = []
        if cont:
            out += [(1, 0, hb[:3]), (9, 4, hb[3:])]
        else:
            out += [(1, 4, hb)]
        n = max(1, len(body) // data_frames + (len(body) % data_frames > 0))
        pieces = [body[i:i + n] for i in range(0, len(body), n)]
        for i, p in enumerate(pieces):
            last = i == len(pieces) - 1
            if pad:
                out.append((0, (1 if last else 0) | 8, bytes([pad]) + p + b"\0" * pad))
            else:
                out.append((0, 1 if last else 0, p))
        return out
    return frames


def h2c():
    h2_case("h2-prior", "h2c", h2_resp(), H2P)
    h2_case("h2-prior-frames", "h2c", h2_resp(data_frames=5), H2P)
    h2_case("h2-prior-padded", "h2c", h2_resp(pad=17), H2P)
    h2_case("h2-prior-continuation", "h2c", h2_resp(cont=True), H2P)
    h2_case("h2-prior-gzip", "h2c", h2_resp(body=gz(EICAR), ce=b"gzip"), H2P)
    h2_case("h2-upgrade", "h2c", h2_resp(), H2U)
    h2_case("h2-upgrade-frames", "h2c", h2_resp(data_frames=4), H2U)
    h2_case("h2-upgrade-gzip", "h2c", h2_resp(body=gz(EICAR), ce=b"gzip"), H2U)
    c = h2_case("h2-prior-upload", "h2c", None, ["curl-h2p-up"])
    c.upload = True
    c.files = {"body": EICAR}
    h2_case("h2-prior-clean", "control", h2_resp(body=CLEAN), H2P + H2U, expect=CLEAN)


# --- CONNECT and proxies ----------------------------------------------------------------

def connect():
    add("connect-plain", "connect", plain(), clients=["curl-p", "curl-p-c"],
        note="curl -p -x: GET inside a CONNECT tunnel")
    add("connect-gzip", "connect", encoded([gz]), clients=["curl-p", "curl-p-c"])
    add("connect-chunked", "connect", chunked(), clients=["curl-p", "curl-p-c"])
    add("connect-br", "connect", encoded([br]), clients=["curl-p", "curl-p-c"])
    add("connect-quirk", "connect", plain(b"HTTP/1.2 200OK", [b"Content-Length: +68"]),
        clients=["curl-p", "curl-p-c"])
    add("proxy-absolute", "connect", plain(), clients=["curl-x", "requests-x"],
        note="absolute-form request to a forward proxy")
    add("proxy-absolute-gzip", "connect", encoded([gz]), clients=["curl-x", "requests-x"])


# --- joins -------------------------------------------------------------------------------

def _ranged(body):
    def respond(req):
        rng = req.headers.get("range", "")
        if not rng.startswith("bytes="):
            return [head(headers=[cl(body)]) + body]
        a, _, b = rng[6:].partition("-")
        a = int(a)
        b = int(b) if b else len(body) - 1
        part = body[a:b + 1]
        return [head(b"HTTP/1.1 206 Partial Content",
                     [cl(part), b"Content-Range: bytes %d-%d/%d" % (a, b, len(body))]) + part]
    return respond


def _half(i):
    return lambda req: [head(headers=[cl(EICAR[34 * i:34 * (i + 1)])]) + EICAR[34 * i:34 * (i + 1)]]


def joins():
    curl = "curl -sS --max-time {t}"
    add("join-range-2conn", "join", _ranged(EICAR), clients={
        "curl": ["sh", "-c", f"{curl} -r 0-33 -o {{out}}.a {{url}}; {curl} -r 34- -o {{out}}.b "
                 "{url}; cat {out}.a {out}.b > {out}"],
        "requests": ["python3", "/ev/pyclient.py", "get-ranges", "{url}", "{out}", "0-33", "34-"]},
        note="two Range requests on two connections, joined by the client")
    add("join-range-1conn", "join", _ranged(EICAR), keep=True, clients={
        "curl": ["sh", "-c", f"{curl} -r 0-33 -o {{out}}.a {{url}} --next -r 34- -o {{out}}.b "
                 "{url}; cat {out}.a {out}.b > {out}"]},
        note="two Range requests on one connection")
    add("join-range-3", "join", _ranged(EICAR), clients={
        "requests": ["python3", "/ev/pyclient.py", "get-ranges", "{url}", "{out}", "0-19",
                     "20-49", "50-"]})
    add("join-two-urls", "join", _half(0), clients={
        "curl": ["sh", "-c", f"{curl} -o {{out}}.a {{url}}; {curl} -o {{out}}.b "
                 "{url2}; cat {out}.a {out}.b > {out}"]}, note="halves at two URLs")
    add("join-two-urls-b", "join", _half(1), clients=[],
        note="the second half for join-two-urls, not run on its own")
    add("join-range-gzip", "join", _ranged(gz(EICAR)), clients={
        "curl": ["sh", "-c", f"{curl} -r 0-20 -o {{out}}.a {{url}}; {curl} -r 21- -o {{out}}.b "
                 "{url}; cat {out}.a {out}.b > {out}"]},
        note="a .gz file in two ranges (the join holds EICAR once unpacked)")


# --- long bodies -------------------------------------------------------------------------

PAD = 16 << 20


def _pad_block():
    # Random-looking, but the same each time the server starts.
    import random
    return random.Random(11).randbytes(1 << 20)


def _long(te=False, ce=None):
    def respond(req):
        block = _pad_block()
        if ce:
            data = gz(b"\0" * PAD + EICAR, 6)
            return [head(headers=[b"Content-Encoding: gzip", cl(data)]) + data]
        if te:
            out = [head(headers=[b"Transfer-Encoding: chunked"])]
            out += [b"%x\r\n" % len(block) + block + b"\r\n"] * (PAD >> 20)
            return out + [b"%x\r\n" % len(EICAR) + EICAR + b"\r\n0\r\n\r\n"]
        return [head(headers=[b"Content-Length: %d" % (PAD + len(EICAR))])] + \
            [block] * (PAD >> 20) + [EICAR]
    return respond


def long():
    add("long-16m", "long", _long(), note="EICAR after 16 MiB of padding")
    add("long-16m-chunked", "long", _long(te=True))
    add("long-16m-gzip", "long", _long(ce=True), clients=["curlc", "requests", "urllib"])


# --- controls: clean bodies that must arrive byte-identical --------------------------------

def controls():
    C = CLEAN
    add("ctl-plain", "control", plain(body=C), expect=C)
    add("ctl-gzip", "control", encoded([gz], C), expect=C)
    add("ctl-deflate", "control", encoded([zl], C), expect=C)
    add("ctl-deflate-raw", "control", encoded([raw_deflate], C), expect=C)
    add("ctl-br", "control", encoded([br], C), expect=C)
    add("ctl-zstd", "control", encoded([zst], C), expect=C)
    add("ctl-gzip-gzip", "control", encoded([gz, gz], C), expect=C)
    add("ctl-chunked", "control", chunked(C, size=100), expect=C)
    add("ctl-gzip-chunked", "control", lambda r: [
        head(headers=[b"Content-Encoding: gzip", b"Transfer-Encoding: chunked"]) +
        chunks(gz(C), size=50)], expect=C)
    add("ctl-gzip-2members", "control", lambda r: _gz_resp(gz(C[:1000]) + gz(C[1000:])),
        expect=C)
    # No control for "Transfer-Encoding: gzip, chunked": curl de-chunks and
    # decodes it, wget and Python save the chunked bytes raw (chunk
    # extensions included), so sluice reads it as an anomaly and blocks it.
    add("ctl-big", "control", lambda r: [head(headers=[b"Content-Length: %d" % (4 << 20)])] +
        [_pad_block()] * 4, expect="pad4m")
    add("ctl-zip", "control", lambda r: [
        head(headers=[cl(zipped([("a.txt", C)]))]) + zipped([("a.txt", C)])],
        expect="zip-clean")
    add("ctl-http12", "control", plain(b"HTTP/1.2 200 OK", body=C), expect=C)
    add("ctl-upload", "control", _upload_ok, kind="upload", expect=C, files={"body": C},
        clients={"curl": ["curl", "-sS", "--max-time", "{t}", "-o", "/dev/null", "-F",
                          "file=@{in};encoder=base64", "{url}"]})


def expected_bytes(case):
    """The exact bytes a control must deliver."""
    if case.expect == "pad4m":
        return _pad_block() * 4
    if case.expect == "zip-clean":
        return zipped([("a.txt", CLEAN)])
    return case.expect


# --- TCP: a peer that writes its own segments ------------------------------------------------

def tcp():
    """The hook for TCP-level cases: tests/evasion/tcp_peer.py, when it is
    there, must offer CASES, a list of (name, note), and serve each at
    /case/NAME itself, writing its own segments, when started in a container
    of its own on the bridge as  python3 /ev/tcp_peer.py serve --port 8080
    (with NET_ADMIN and NET_RAW; SERVE_ARGV, if it defines one, replaces
    that command). The runner fetches them with curl, wget and urllib."""
    mod = tcp_peer()
    for name, note in getattr(mod, "CASES", []) if mod else []:
        add("tcp-" + name if not name.startswith("tcp-") else name, "tcp", None,
            clients=["curl", "wget", "urllib"], note=note, kind="tcp")


def tcp_peer():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "tcp_peer.py")
    if not os.path.exists(path):
        return None
    import importlib.util
    spec = importlib.util.spec_from_file_location("tcp_peer", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception:  # the peer may need what this side lacks
        return None
    return mod


framing()
codings()
archives()
uploads()
websocket()
h2c()
connect()
joins()
long()
controls()
tcp()


# --- what a client got ----------------------------------------------------------------

def holds_eicar(data, depth=0):
    """Whether data holds EICAR, also inside zip, tar, gzip, bzip2 and xz
    files (what the receiving user gets once unpacked)."""
    if not data:
        return False
    if EICAR in data:
        return True
    if depth > 4:
        return False
    import bz2
    import lzma
    inner = []
    try:
        if data[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                inner = [z.read(n) for n in z.namelist()]
        elif data[:2] == b"\x1f\x8b":
            inner = [gzip.decompress(data)]
        elif data[:3] == b"BZh":
            inner = [bz2.decompress(data)]
        elif data[:6] == b"\xfd7zXZ\0":
            inner = [lzma.decompress(data)]
        elif len(data) >= 512 and data[257:262] == b"ustar":
            with tarfile.open(fileobj=io.BytesIO(data)) as t:
                inner = [t.extractfile(m).read() for m in t.getmembers() if m.isfile()]
    except Exception:
        return False
    return any(holds_eicar(d, depth + 1) for d in inner)


def h2_ports(base=9000):
    """HTTP/2 with prior knowledge sends its path HPACK-coded: each such case
    gets a port of its own, so the server knows the case without HPACK."""
    return {c.name: base + i for i, c in enumerate(x for x in CASES if x.kind == "h2")}
