#!/usr/bin/env python3
"""The CPU floor of receiving a push: a minimal receiver reads a TCP stream into one 1 MiB
buffer, writes it to a file and fdatasyncs at the end; the sender uses sendfile. Prints the
receiver's CPU seconds per GiB (user + system). Add SHA-256's CPU per GiB (`openssl dgst`) to get
issue 20's floor for a monolithic push.

Usage: benches/receive_floor.py FILE_TO_SEND DIRECTORY_FOR_THE_COPY [ROUNDS]
"""
import os, resource, socket, statistics, sys, threading

def cpu():
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime + r.ru_stime

def receive(listener, out_path, result):
    conn, _ = listener.accept()
    start = cpu()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    total = 0
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            break
        os.write(fd, view[:n])
        total += n
    os.fdatasync(fd)
    os.close(fd)
    conn.close()
    result.append((cpu() - start, total))

def one_round(src, out_dir):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    result = []
    out = os.path.join(out_dir, "receive-floor.copy")
    t = threading.Thread(target=receive, args=(listener, out, result))
    t.start()
    with socket.create_connection(listener.getsockname()) as s, open(src, "rb") as f:
        s.sendfile(f)
        s.shutdown(socket.SHUT_WR)
    t.join()
    os.unlink(out)
    seconds, total = result[0]
    return seconds / (total / 2**30)

if __name__ == "__main__":
    src, out_dir = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    runs = [one_round(src, out_dir) for _ in range(rounds)]
    print(f"receiver CPU s/GiB: median {statistics.median(runs):.3f} (runs {', '.join(f'{r:.3f}' for r in runs)})")
