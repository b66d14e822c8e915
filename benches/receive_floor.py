#!/usr/bin/env python3
"""The floor of receiving a push: a minimal receiver reads a TCP stream into one 1 MiB buffer,
writes it to a file and fdatasyncs at the end; the sender uses sendfile. Prints the receiver's
CPU seconds per GiB (user + system) and its wall-clock throughput. Add SHA-256's CPU per GiB
(`openssl dgst`) to get issue 20's CPU floor for a monolithic push.

With --hash the receiver also hashes every buffer with SHA-256 (hashlib, which is OpenSSL's),
as a registry must, on the receiving thread. With --hash-thread a second thread hashes while
the first receives and writes the next buffer (four buffers of 1 MiB in turn), as a registry
can on two cores. On tmpfs their throughput is the fastest a one-request push can go on this
machine, with a sender that costs almost nothing: the ceiling for issue 20's "monolithic push
on tmpfs / one core's SHA-256".

Usage: benches/receive_floor.py [--hash | --hash-thread] FILE_TO_SEND DIRECTORY_FOR_THE_COPY [ROUNDS]
"""
import hashlib, os, queue, resource, socket, statistics, sys, threading, time

def cpu():
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime + r.ru_stime

class HashThread:
    """Hashes buffers handed to it, in order, on its own thread; buffers come back for reuse."""

    def __init__(self, buffers):
        self.sha = hashlib.sha256()
        self.todo, self.free = queue.Queue(), queue.Queue()
        for _ in range(buffers):
            self.free.put(bytearray(1 << 20))
        self.cpu = 0.0
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        start = cpu()
        while (item := self.todo.get()) is not None:
            buf, n = item
            self.sha.update(memoryview(buf)[:n])
            self.free.put(buf)
        self.cpu = cpu() - start

    def finish(self):
        self.todo.put(None)
        self.thread.join()
        return self.cpu


def receive(listener, out_path, mode, result):
    conn, _ = listener.accept()
    start, started = cpu(), time.monotonic()
    hasher = HashThread(4) if mode == "--hash-thread" else None
    sha = hashlib.sha256() if mode == "--hash" else None
    own = bytearray(1 << 20)
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    total = 0
    while True:
        buf = hasher.free.get() if hasher else own
        n = conn.recv_into(buf)
        if n == 0:
            break
        view = memoryview(buf)[:n]
        os.write(fd, view)
        if sha:
            sha.update(view)
        if hasher:
            hasher.todo.put((buf, n))
        total += n
    os.fdatasync(fd)
    os.close(fd)
    conn.close()
    hash_cpu = hasher.finish() if hasher else 0.0
    result.append((cpu() - start + hash_cpu, time.monotonic() - started, total))

def one_round(src, out_dir, mode):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    result = []
    out = os.path.join(out_dir, "receive-floor.copy")
    t = threading.Thread(target=receive, args=(listener, out, mode, result))
    t.start()
    with socket.create_connection(listener.getsockname()) as s, open(src, "rb") as f:
        s.sendfile(f)
        s.shutdown(socket.SHUT_WR)
    t.join()
    os.unlink(out)
    seconds, wall, total = result[0]
    return seconds / (total / 2**30), total / wall / 1e6

def median_line(label, values, fmt):
    return f"{label}: median {fmt(statistics.median(values))} (runs {', '.join(fmt(v) for v in values)})"

if __name__ == "__main__":
    args = sys.argv[1:]
    mode = next((a for a in args if a in ("--hash", "--hash-thread")), None)
    args = [a for a in args if a != mode]
    src, out_dir = args[0], args[1]
    rounds = int(args[2]) if len(args) > 2 else 3
    runs = [one_round(src, out_dir, mode) for _ in range(rounds)]
    what = {None: "receiver", "--hash": "receiver with SHA-256",
            "--hash-thread": "receiver with SHA-256 on a second thread"}[mode]
    print(median_line(f"{what} CPU s/GiB", [r[0] for r in runs], lambda v: f"{v:.3f}"))
    print(median_line(f"{what} MB/s", [r[1] for r in runs], lambda v: f"{v:.0f}"))
