"""Builds small, exact captures for sluice's offline tests: TCP conversations
with chosen segmentation, reordering and retransmissions, written as classic
pcap (Ethernet) files. Checksums are correct so other tools read them too."""
import random
import struct

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ip4(a):
    return bytes(int(x) for x in a.split("."))


class Packet:
    def __init__(self, ts, frame):
        self.ts = ts
        self.frame = frame


def tcp_frame(src, dst, sport, dport, seq, ack, flags, payload=b""):
    tcp_len = 20 + len(payload)
    pseudo = _ip4(src) + _ip4(dst) + struct.pack("!BBH", 0, 6, tcp_len)
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                      flags, 65535, 0, 0)
    csum = _csum(pseudo + hdr + payload)
    hdr = hdr[:16] + struct.pack("!H", csum) + hdr[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len, 0, 0x4000, 64, 6, 0, _ip4(src),
                     _ip4(dst))
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    eth = b"\x02\x42\xac\x11\x00\x02" + b"\x02\x42\xac\x11\x00\x03" + b"\x08\x00"
    return eth + ip + hdr + payload


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class Conversation:
    """One TCP connection between a client and a server."""

    def __init__(self, client="172.17.0.2", server="172.17.0.3", cport=40000, sport=80,
                 start=1700000000.0):
        self.c, self.s, self.cport, self.sport = client, server, cport, sport
        self.cseq, self.sseq = 1000, 5000000
        self.t = start
        self.packets = []

    def _add(self, from_client, flags, payload=b"", seq=None):
        self.t += 0.001
        if from_client:
            f = tcp_frame(self.c, self.s, self.cport, self.sport,
                          self.cseq if seq is None else seq, self.sseq, flags, payload)
        else:
            f = tcp_frame(self.s, self.c, self.sport, self.cport,
                          self.sseq if seq is None else seq, self.cseq, flags, payload)
        self.packets.append(Packet(self.t, f))

    def handshake(self):
        self._add(True, SYN)
        self.cseq += 1
        self._add(False, SYN | ACK)
        self.sseq += 1
        self._add(True, ACK)
        return self

    def send(self, from_client, data, segment=1460, shuffle=False, duplicate=False, seed=1):
        """Sends data in segments; shuffle reorders them, duplicate retransmits
        some with the same bytes (overlapping the neighbours)."""
        base = self.cseq if from_client else self.sseq
        segs = [(base + i, data[i:i + segment]) for i in range(0, len(data), segment)]
        rnd = random.Random(seed)
        if duplicate:
            extra = []
            for off in range(0, len(data), max(1, segment * 3)):
                end = min(len(data), off + segment * 2)
                extra.append((base + off, data[off:end]))
            segs += extra
        if shuffle:
            rnd.shuffle(segs)
        for seq, chunk in segs:
            self._add(from_client, PSH | ACK, chunk, seq=seq)
        if from_client:
            self.cseq += len(data)
        else:
            self.sseq += len(data)
        # the receiver acknowledges everything
        self._add(not from_client, ACK)
        return self

    def close(self):
        self._add(True, FIN | ACK)
        self.cseq += 1
        self._add(False, FIN | ACK)
        self.sseq += 1
        self._add(True, ACK)
        return self


def write_pcap(path, conversations):
    packets = sorted((p for c in conversations for p in c.packets), key=lambda p: p.ts)
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for p in packets:
            sec = int(p.ts)
            usec = int(round((p.ts - sec) * 1e6))
            f.write(struct.pack("<IIII", sec, usec, len(p.frame), len(p.frame)))
            f.write(p.frame)


def http_response(body, headers=None, status="200 OK"):
    h = [f"HTTP/1.1 {status}"]
    h += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if not any(k.lower() in ("content-length", "transfer-encoding") for k in (headers or {})):
        h.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


def chunked(body, size):
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"
