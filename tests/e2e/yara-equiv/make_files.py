#!/usr/bin/env python3
"""Writes the files of check-yara-equiv into a directory:

  - crafted files (text, zeros, random data) with the markers of rules.yar at
    the start, the end, the middle, or repeated over a region, so that a scan
    of a piece of the file (a prefix, one packet, 1 MiB) answers differently
    from a scan of the whole file;
  - minimal PE files (PE32 and PE32+, EXE and DLL, with and without overlay);
  - ELF files of this host (/usr/bin, /usr/sbin, /usr/lib/x86_64-linux-gnu),
    small to 15 MiB, and a few PE files if the host has some (pip's launchers);
  - 4, 8 and 15 MiB files.

Every file is smaller than 15.5 MiB, under sluiced's default limits.body
(16 MiB): past it sluiced scans a prefix by design. Crafted files are the
same on every run (seeded); the host files depend on the machine.

  make_files.py OUTDIR     prints one line per file: NAME<TAB>WHAT"""
import glob
import os
import random
import shutil
import struct
import sys
import sysconfig

KiB, MiB = 1 << 10, 1 << 20
MAX_SIZE = 15 * MiB + MiB // 2
WEBSHELL = b"<?php @eval($_POST['slq']); ?>"


def text_block(seed, size=64 * KiB):
    """Readable text (entropy near 4.5 bits per byte), no marker in it."""
    rnd = random.Random(seed)
    words = [w.encode() for w in ("the of and to in is was for on that with as by at from "
                                  "packet stream body header window file scan rule offset "
                                  "container bridge verdict policy engine client server").split()]
    out = bytearray()
    while len(out) < size:
        line = b" ".join(rnd.choice(words) for _ in range(rnd.randint(6, 14)))
        out += line.capitalize() + b".\n"
    return bytes(out[:size])


TEXT = text_block(1)


def text(n):
    reps = n // len(TEXT) + 1
    return (TEXT * reps)[:n]


def rand(n, seed):
    return random.Random(seed).randbytes(n)


def place(base, marks):
    """base with each (offset, bytes) of marks written over it; a negative
    offset counts from the end."""
    buf = bytearray(base)
    for off, m in marks:
        if off < 0:
            off = len(buf) + off
        buf[off:off + len(m)] = m
    return bytes(buf)


def dense(n, pad, unit, start, stop):
    """pad of n bytes with unit repeated back to back from start to stop: a
    piece of the file that begins or ends inside the region sees the unit at
    its own start or end."""
    reps = (stop - start) // len(unit)
    return pad[:start] + unit * reps + pad[start + reps * len(unit):n]


def spread(n, pad, unit, every, start, stop):
    """pad with unit every `every` bytes from start to stop."""
    return place(pad, [(o, unit) for o in range(start, stop, every)])


# --- minimal PE files -----------------------------------------------------------

def pe_file(machine=0x8664, sections=2, dll=False, overlay=b""):
    """A PE image that YARA's pe module parses: DOS header, PE signature,
    COFF header, optional header (PE32+ for AMD64, PE32 for i386), section
    table, raw sections of 512 bytes each, then overlay bytes."""
    is64 = machine == 0x8664
    opt_size = 240 if is64 else 224
    e_lfanew = 0x80
    headers = 0x400
    dos = bytearray(e_lfanew)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, e_lfanew)
    dos[0x40:0x40 + 39] = b"This program cannot be run in DOS mode."
    chars = 0x0002 | (0x0020 if is64 else 0x0100)  # executable, large address / 32-bit
    if dll:
        chars |= 0x2000
    coff = struct.pack("<HHIIIHH", machine, sections, 0x5F000000, 0, 0, opt_size, chars)
    size_image = 0x1000 * (sections + 1)
    if is64:
        opt = struct.pack("<HBBIIIIIQIIHHHHHHIIIIHHQQQQII", 0x20B, 14, 0, 0x200, 0x200 *
                          (sections - 1), 0, 0x1000, 0x1000, 0x140000000, 0x1000, 0x200, 6, 0,
                          0, 0, 6, 0, 0, size_image, headers, 0, 3, 0x8160, 0x100000, 0x1000,
                          0x100000, 0x1000, 0, 16)
    else:
        opt = struct.pack("<HBBIIIIIIIIIHHHHHHIIIIHHIIIIII", 0x10B, 14, 0, 0x200, 0x200 *
                          (sections - 1), 0, 0x1000, 0x1000, 0x2000, 0x400000, 0x1000, 0x200,
                          6, 0, 0, 0, 6, 0, 0, size_image, headers, 0, 3, 0x8140, 0x100000,
                          0x1000, 0x100000, 0x1000, 0, 16)
    opt += bytes(16 * 8)
    assert len(opt) == opt_size
    names = [b".text", b".rdata", b".data", b".pdata", b".rsrc", b".reloc", b".tls", b".idata"]
    table = b""
    for i in range(sections):
        flags = 0x60000020 if i == 0 else 0x40000040
        table += struct.pack("<8sIIIIIIHHI", names[i % len(names)], 0x200, 0x1000 * (i + 1),
                             0x200, headers + 0x200 * i, 0, 0, 0, 0, flags)
    head = bytes(dos) + b"PE\0\0" + coff + opt + table
    assert len(head) <= headers
    body = b"".join(bytes([0xC3]) + bytes(0x1FF) if i == 0 else bytes(0x200)
                    for i in range(sections))
    return head + bytes(headers - len(head)) + body + overlay


# --- the crafted files ------------------------------------------------------------

def crafted():
    """(name, what, bytes) of every crafted file."""
    t4, t8 = text(4 * MiB), text(8 * MiB)
    pe64 = pe_file()
    yield "c01-webshell.php", "webshell line in 2 KiB of text", text(2 * KiB) + WEBSHELL + b"\n"
    yield ("c02-webshell-head-5m.txt", "webshell line at the start of 5 MiB",
           WEBSHELL + b"\n" + text(5 * MiB))
    yield ("c03-webshell-tail-5m.txt", "webshell line at the end of 5 MiB",
           text(5 * MiB) + WEBSHELL + b"\n")
    yield ("c04-bigmark-15m.txt", "SLQ-BIGMARK in the middle of 15 MiB",
           place(text(15 * MiB), [(7 * MiB + 3, b"SLQ-BIGMARK")]))
    yield ("c05-bigmark-2m.txt", "SLQ-BIGMARK in 2 MiB",
           place(text(2 * MiB), [(MiB, b"SLQ-BIGMARK")]))
    yield "c06-header.txt", "SLQHDR at 0", b"SLQHDR" + text(100 * KiB)
    # Pieces of a body tend to begin at multiples of 8 (segments of 1448
    # bytes): the dense markers below sit at such offsets.
    yield ("c07-header-dense-4m.txt", "SLQHDR every 8 bytes from 1 to 3 MiB",
           dense(4 * MiB, t4, b"SLQHDR..", MiB, 3 * MiB))
    yield "c08-trailer-4m.txt", "SLQTRAILER! as the last bytes", t4 + b"SLQTRAILER!"
    yield ("c09-trailer-plus1-4m.txt", "SLQTRAILER! then one byte", t4 + b"SLQTRAILER!\n")
    yield ("c10-trailer-dense-8m.txt", "SLQTRAILER! back to back from 1 to 7 MiB",
           dense(8 * MiB, t8, b"SLQTRAILER!", MiB, 7 * MiB))
    yield ("c11-tailzone-end.txt", "SLQ-TAILZONE 100 bytes before the end",
           place(text(300 * KiB), [(-100, b"SLQ-TAILZONE")]))
    yield ("c12-tailzone-dense-4m.txt", "SLQ-TAILZONE every 1000 bytes from 1 to 3 MiB",
           spread(4 * MiB, t4, b"SLQ-TAILZONE", 1000, MiB, 3 * MiB))
    yield ("c13-tag-early.txt", "SLQ-TAG-C at 2000",
           place(text(50 * KiB), [(2000, b"SLQ-TAG-C")]))
    yield ("c14-tag-late.txt", "SLQ-TAG-A at 5000",
           place(text(60 * KiB), [(5000, b"SLQ-TAG-A")]))
    yield ("c15-tag-dense-4m.txt", "SLQ-TAG-B every 1000 bytes from 1 to 3 MiB",
           spread(4 * MiB, t4, b"SLQ-TAG-B", 1000, MiB, 3 * MiB))
    yield ("c16-alltags-8m.txt", "SLQ-ALL-1, -2, -3 at 0.5, 4 and 7.9 MiB",
           place(t8, [(MiB // 2, b"SLQ-ALL-1"), (4 * MiB, b"SLQ-ALL-2"),
                      (8 * MiB - 100 * KiB, b"SLQ-ALL-3")]))
    yield ("c17-twotags-8m.txt", "SLQ-ALL-1 and -2 only",
           place(t8, [(MiB // 2, b"SLQ-ALL-1"), (4 * MiB, b"SLQ-ALL-2")]))
    yield ("c18-count4-8m.txt", "SLQ-CNT at 0, 2, 4, 6 MiB",
           place(t8, [(o * MiB, b"SLQ-CNT") for o in (0, 2, 4, 6)]))
    yield ("c19-count3-8m.txt", "SLQ-CNT at 0, 3, 6 MiB",
           place(t8, [(o * MiB, b"SLQ-CNT") for o in (0, 3, 6)]))
    yield ("c20-count-near.txt", "SLQ-CNT 10 times within 200 bytes",
           spread(100 * KiB, text(100 * KiB), b"SLQ-CNT", 20, 5000, 5200))
    yield ("c21-one-once.txt", "SLQ-ONE once in 300 KiB",
           place(text(300 * KiB), [(150 * KiB, b"SLQ-ONE")]))
    yield ("c22-one-twice-4m.txt", "SLQ-ONE near the start and near the end",
           place(t4, [(100, b"SLQ-ONE"), (-100, b"SLQ-ONE")]))
    yield "c23-x-only.txt", "SLQ-XGOOD alone", place(text(20 * KiB), [(1000, b"SLQ-XGOOD")])
    yield ("c24-x-then-y-4m.txt", "SLQ-XGOOD at the start, SLQ-YSIGNED at the end",
           place(t4, [(10, b"SLQ-XGOOD"), (-20, b"SLQ-YSIGNED")]))
    yield ("c25-y-then-x-4m.txt", "SLQ-YSIGNED at the start, SLQ-XGOOD at the end",
           place(t4, [(10, b"SLQ-YSIGNED"), (-20, b"SLQ-XGOOD")]))
    yield ("c26-pair-far-4m.txt", "SLQ-PAIR at 1000 and 3 MiB",
           place(t4, [(1000, b"SLQ-PAIR"), (3 * MiB, b"SLQ-PAIR")]))
    yield ("c27-pair-near-2m.txt", "SLQ-PAIR twice 100 bytes apart",
           place(text(2 * MiB), [(MiB, b"SLQ-PAIR"), (MiB + 100, b"SLQ-PAIR")]))
    yield ("c28-mz-dense-4m.bin", "two zero bytes, then MZ back to back",
           b"\0\0" + b"MZ" * (2 * MiB - 1))
    yield "c29-random-1m.bin", "random 1 MiB", rand(MiB, 29)
    yield "c30-random-2900k.bin", "random 2900 KiB", rand(2900 * KiB, 30)
    yield "c31-random-4m.bin", "random 4 MiB", rand(4 * MiB, 31)
    yield "c32-random-15m.bin", "random 15 MiB", rand(15 * MiB, 32)
    yield "c33-half-random-2m.bin", "random 1 MiB then zeros 1 MiB", rand(MiB, 33) + bytes(MiB)
    yield "c34-zeros-8m.bin", "zeros 8 MiB", bytes(8 * MiB)
    yield "c35-text-4m.txt", "text 4 MiB", t4
    yield ("c36-eight-rules.bin", "random 1 MiB with eight rules' markers",
           place(rand(MiB, 36), [(0, b"SLQHDR"), (100, b"SLQ-TAG-B"), (5000, b"SLQ-PLAIN-7f3a"),
                                 (9000, b"SLQ-ONE"), (12000, b"SLQ-XGOOD"),
                                 (-200, b"SLQ-TAILZONE"), (-11, b"SLQTRAILER!")]))
    yield ("c37-plain-middle-8m.txt", "SLQ-PLAIN-7f3a in the middle of 8 MiB",
           place(t8, [(4 * MiB + 777, b"SLQ-PLAIN-7f3a")]))
    yield ("c38-plain-across-1m.txt", "SLQ-PLAIN-7f3a across the 1 MiB mark",
           place(text(2 * MiB), [(MiB - 7, b"SLQ-PLAIN-7f3a")]))
    yield ("c39-plain-end-15m.bin", "zeros 15 MiB, SLQ-PLAIN-7f3a at the end",
           bytes(15 * MiB - 14) + b"SLQ-PLAIN-7f3a")
    yield "c40-text-small.txt", "text 10 KiB", text(10 * KiB)
    yield ("c41-plain-early-random-4m.bin", "random 4 MiB, SLQ-PLAIN-7f3a at 5000",
           place(rand(4 * MiB, 41), [(5000, b"SLQ-PLAIN-7f3a")]))
    yield "c42-regex-start.txt", "SLQRE-A at 0", b"SLQRE-A " + text(30 * KiB)
    yield ("c43-regex-dense-4m.txt", "SLQRE-A every 8 bytes from 1 to 3 MiB",
           dense(4 * MiB, t4, b"SLQRE-A.", MiB, 3 * MiB))
    yield "c44-regex-end.txt", "SLQRE-Z as the last bytes", text(30 * KiB) + b" SLQRE-Z"
    yield ("c45-regex-end-dense-4m.txt", "SLQRE-Z ending every 8 bytes from 1 to 3 MiB",
           dense(4 * MiB, t4, b".SLQRE-Z", MiB, 3 * MiB))
    yield ("c46-fullword.txt", "SLQWORD as a word in text",
           place(text(40 * KiB), [(20000, b" SLQWORD ")]))
    yield ("c47-fullword-glued-4m.txt", "SLQWORD glued to letters every 16 bytes",
           dense(4 * MiB, t4, b"zzzzzzzzSLQWORD.", MiB, 3 * MiB))
    yield "p01-amd64-2sec.exe", "PE32+ EXE, 2 sections", pe64
    yield "p02-amd64-5sec.dll", "PE32+ DLL, 5 sections", pe_file(sections=5, dll=True)
    yield "p03-i386-4sec.exe", "PE32 EXE, 4 sections", pe_file(machine=0x14C, sections=4)
    yield ("p04-amd64-overlay-6m.exe", "PE32+ EXE, 2 sections, 6 MiB overlay",
           pe_file(overlay=text(6 * MiB)))
    yield ("p05-pe-inside-4m.bin", "a PE file at 2 MiB inside text",
           place(t4, [(2 * MiB, pe_file(sections=2))]))
    yield ("p06-amd64-dll-tail-5m.dll", "PE32+ DLL with SLQ-ONE near its 5 MiB end",
           pe_file(sections=3, dll=True, overlay=place(text(5 * MiB), [(-5000, b"SLQ-ONE")])))


# --- files of this host -----------------------------------------------------------

def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def host_elfs():
    """ELF files of this host, picked evenly by name in four size classes;
    static executables (busybox, docker-init) when present."""
    seen, found = set(), []
    for d in ("/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu"):
        for p in sorted(glob.glob(os.path.join(d, "*"))):
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            st = os.stat(p)
            if st.st_size > MAX_SIZE or (st.st_dev, st.st_ino) in seen or not is_elf(p):
                continue
            seen.add((st.st_dev, st.st_ino))
            found.append((p, st.st_size))
    picked = []
    for lo, hi, n in ((0, 256 * KiB, 8), (256 * KiB, MiB, 6), (MiB, 5 * MiB, 6),
                      (5 * MiB, MAX_SIZE, 5)):
        cls = [p for p, s in found if lo <= s < hi]
        if cls:
            step = max(len(cls) / n, 1)
            picked += [cls[int(i * step)] for i in range(min(n, len(cls)))]
    for p in ("/bin/busybox", "/usr/bin/docker-init"):
        real = os.path.realpath(p)
        if is_elf(real) and real not in picked and os.path.getsize(real) <= MAX_SIZE:
            picked.append(real)
    return picked


def host_pes(limit=3):
    """PE files some Python packages carry (pip's and setuptools' launchers)."""
    found = []
    roots = {sysconfig.get_paths()["purelib"], "/usr/lib/python3/dist-packages"}
    for root in sorted(roots):
        for pat in ("pip/_vendor/distlib/*.exe", "setuptools/*.exe"):
            for p in sorted(glob.glob(os.path.join(root, pat))):
                with open(p, "rb") as f:
                    if f.read(2) == b"MZ" and os.path.getsize(p) <= MAX_SIZE:
                        found.append(p)
    return found[:limit]


def safe(name):
    """A name that needs no quoting in a URL or a shell ("[" is /usr/bin/[)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def make(outdir):
    """Writes every file into outdir; returns [(name, what)]."""
    os.makedirs(outdir, exist_ok=True)
    made = []
    for name, what, data in crafted():
        assert len(data) <= MAX_SIZE, name
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
        made.append((name, what))
    for i, p in enumerate(host_elfs()):
        name = f"e{i + 1:02d}-{safe(os.path.basename(p))}"
        shutil.copyfile(p, os.path.join(outdir, name))
        made.append((name, f"ELF {p}"))
    for i, p in enumerate(host_pes()):
        name = f"h{i + 1:02d}-{safe(os.path.basename(p))}"
        shutil.copyfile(p, os.path.join(outdir, name))
        made.append((name, f"PE {p}"))
    return made


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for name, what in make(sys.argv[1]):
        print(f"{name}\t{what}")
