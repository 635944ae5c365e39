"""Shared by the capture tests: find the corpus, materialise split captures,
run sluiced on a capture and read its events."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRCDIR = os.environ.get("SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SLUICED = os.environ.get("SLUICED", os.path.join(SRCDIR, "sluiced"))
CORPUS = os.environ.get("CORPUS", os.path.join(SRCDIR, "tests", "corpus", "ndpi-4.2"))
TIMEOUT = int(os.environ.get("SLUICE_CAPTURE_TIMEOUT", "120"))


def workdir():
    d = tempfile.mkdtemp(prefix="sluice-corpus-")
    return d


def captures(workdir_path):
    """(name, path) of every capture; split ones are joined into workdir."""
    pcaps = os.path.join(CORPUS, "pcaps")
    names = {}
    for p in sorted(glob.glob(os.path.join(pcaps, "*"))):
        base = os.path.basename(p)
        if ".part" in base:
            names.setdefault(base.split(".part")[0], []).append(p)
        else:
            names[base] = None
    out = []
    for name in sorted(names):
        parts = names[name]
        if parts is None:
            out.append((name, os.path.join(pcaps, name)))
            continue
        joined = os.path.join(workdir_path, name)
        with open(joined, "wb") as w:
            for part in sorted(parts):
                with open(part, "rb") as r:
                    shutil.copyfileobj(r, w)
        out.append((name, joined))
    return out


def policy(workdir_path):
    """A policy loading the corpus's nDPI configuration, as ndpiReader's test driver does."""
    cfg = os.path.join(CORPUS, "ndpi-config")
    path = os.path.join(workdir_path, "policy.yaml")
    with open(path, "w") as f:
        # ndpiReader never ends idle flows when reading a file; the longest
        # timeout sluice allows keeps one conversation one flow, as there.
        f.write("limits:\n  flow_timeout: 1d\n")
        f.write("ndpi:\n")
        for key, name in (("protos_file", "protos.txt"), ("categories_file", "categories.txt"),
                          ("risky_domains_file", "risky_domains.txt"),
                          ("ja3_file", "ja3_fingerprints.csv"),
                          ("sha1_file", "sha1_fingerprints.csv")):
            if os.path.exists(os.path.join(cfg, name)):
                f.write(f"  {key}: {os.path.join(cfg, name)}\n")
    return path


def run_sluiced(capture, policy_path, eve_path):
    """Runs sluiced -r; returns (returncode, stderr). A crash is a negative code."""
    cmd = [SLUICED, "-q", "-c", policy_path, "--eve", eve_path, "-r", capture]
    try:
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    return p.returncode, p.stderr.decode(errors="replace")


def events(eve_path):
    with open(eve_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                yield json.loads(line)
            except ValueError as e:
                raise SystemExit(f"{eve_path}:{n}: not JSON: {e}")


def patch_ipv6(s):
    """ndpiReader's ndpi_patchIPv6Address: ':0:' becomes '::' (left to right)."""
    out, i = [], 0
    while i < len(s):
        if s[i] == ":" and s[i + 1:i + 3] == "0:":
            out.append("::")
            i += 3
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def endpoint(ip, port):
    if ":" in ip:
        return f"[{patch_ipv6(ip)}]:{port}"
    return f"{ip}:{port}"


def flow_line(ev):
    """An eve flow event as a line of the corpus's .flows files."""
    nd = ev["ndpi"]
    proto = nd["proto"]
    if ev.get("tunnel"):
        proto = f"{ev['tunnel']}:{nd['proto_id']}/{proto}"
    a, b = sorted([endpoint(ev["src_ip"], ev["src_port"]), endpoint(ev["dest_ip"], ev["dest_port"])])
    l4 = ev["proto"]
    if l4 == "IPv6-ICMP":
        l4 = "ICMPV6"
    return f"{l4} {a} {b} {proto} {nd['category']}"


FLOW_LINE = re.compile(r"^\s+\d+\s+(\S+) (\S+) (?:<->|->) (\S+) (?:\[VLAN: \d+\])?"
                       r"\[proto: (?:[0-9.]+/)?([^\]]+)\].*?\[cat: ([^/\]]+)")


def expected_flows(name):
    """ndpiReader's flows for a capture as .flows lines. Read from its full output
    (expected/NAME.out) when present, since the reduced .flows files leave out
    VLAN-tagged flows; flows without a category (Unknown) are not listed."""
    out_path = os.path.join(CORPUS, "expected", name + ".out")
    lines = []
    if os.path.exists(out_path):
        with open(out_path, errors="replace") as f:
            for line in f:
                m = FLOW_LINE.match(line)
                if m:
                    l4, a, b, proto, cat = m.groups()
                    a, b = sorted([a, b])
                    lines.append(f"{l4} {a} {b} {proto} {cat}")
        return lines
    flows_path = os.path.join(CORPUS, "flows", name + ".flows")
    if os.path.exists(flows_path):
        with open(flows_path) as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
    return lines


def fail(msg):
    print(msg, file=sys.stderr)
