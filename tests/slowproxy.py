#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that forwards to 127.0.0.1:PORT, throttling
the client-to-server direction to RATE bytes/s (a slow link). Prints the
port it listens on, then serves until killed."""
import socket, sys, threading, time

target, rate = int(sys.argv[1]), float(sys.argv[2])

def pump(src, dst, limit):
    try:
        while True:
            data = src.recv(16384 if limit else 65536)
            if not data:
                break
            dst.sendall(data)
            if limit:
                time.sleep(len(data) / limit)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

lsn = socket.socket()
lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsn.bind(("127.0.0.1", 0))
lsn.listen(16)
print(lsn.getsockname()[1], flush=True)
while True:
    c, _ = lsn.accept()
    s = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=pump, args=(c, s, rate), daemon=True).start()
    threading.Thread(target=pump, args=(s, c, 0), daemon=True).start()
