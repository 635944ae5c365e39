#!/usr/bin/python3
"""TCP relay on 127.0.0.1 that saves both streams of each connection.

relay.py LISTEN_PORT TARGET_PORT OUTPREFIX
Connection k writes OUTPREFIX.k.c2s and OUTPREFIX.k.s2c, and OUTPREFIX.k.order:
one line "DIR LENGTH" per piece in the order the relay read them (0 client to
server, 1 server to client), so a replay can keep cause before effect.
"""
import socket
import sys
import threading


def pump(src, dst, path, order, lock, d):
    with open(path, "wb") as f:
        while True:
            try:
                b = src.recv(65536)
            except OSError:
                b = b""
            if not b:
                break
            f.write(b)
            f.flush()
            with lock:
                order.write("%d %d\n" % (d, len(b)))
                order.flush()
            try:
                dst.sendall(b)
            except OSError:
                break
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main():
    lport, tport, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", lport))
    ls.listen(16)
    k = 0
    while True:
        c, _ = ls.accept()
        s = socket.create_connection(("127.0.0.1", tport))
        order = open("%s.%d.order" % (prefix, k), "w")
        lock = threading.Lock()
        for src, dst, d, name in ((c, s, 0, "c2s"), (s, c, 1, "s2c")):
            threading.Thread(target=pump, args=(src, dst, "%s.%d.%s" % (prefix, k, name), order,
                                                lock, d), daemon=True).start()
        k += 1


main()
