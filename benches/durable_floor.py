#!/usr/bin/env python3
"""The floor of a durable small push on this filesystem: how many blobs per second WORKERS
threads can store, with no HTTP and no registry around them, doing only what a blob must go
through before a registry may answer 201 in distribution's layout:

  1. write the bytes to a new file beside the blob store, fdatasync;         (1 fsync)
  2. mkdir blobs/sha256/<xx>/<digest>/, fsync <xx>/; rename the file in as
     data, fsync <digest>/;                                                  (2 fsyncs)
  3. mkdir <repo>/_layers/sha256/<digest>/, fsync its parent; write `link`
     to a temporary file, fsync, rename it in, fsync the directory.          (3 fsyncs)

Six fsyncs. With --no-sync the same operations without any (what distribution 2.8 does: it
never fsyncs), which shows what the fsyncs cost here. With --group, group commit: no fsync of
single files, but three barriers per blob (after the bytes, after the blob's rename, after the
link), each a `syncfs` of the whole filesystem shared by every worker waiting at one (a worker
arriving while one runs waits for the next). Compare a registry's small pushes per second
(`layerstore bench --only small-push`, same size and workers) with this floor.

Usage: benches/durable_floor.py DIRECTORY [--no-sync | --group] [--size 65536] [--workers 8]
       [--seconds 10]
"""
import argparse, ctypes, hashlib, os, shutil, threading, time


class GroupSync:
    """One `syncfs` covers every barrier requested before it started."""

    def __init__(self, directory):
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        self.cond = threading.Condition()
        self.requested = self.done = self.calls = 0
        self.running = False

    def barrier(self):
        with self.cond:
            self.requested += 1
            mine = self.requested
            while self.done < mine and self.running:
                self.cond.wait()
            if self.done >= mine:
                return
            self.running, target = True, self.requested
        if self.libc.syncfs(self.fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs")
        with self.cond:
            self.calls += 1
            self.done, self.running = target, False
            self.cond.notify_all()


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path, data, sync):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def store_blob(root, worker, n, size, sync, group=None):
    body = os.urandom(16) + bytes(size - 16)
    digest = hashlib.sha256(body).hexdigest()
    tmp = os.path.join(root, "tmp", f"{worker}-{n}")
    write_file(tmp, body, sync)
    if group:
        group.barrier()
    shard = os.path.join(root, "blobs", "sha256", digest[:2])
    os.makedirs(shard, exist_ok=True)
    blob_dir = os.path.join(shard, digest)
    os.mkdir(blob_dir)
    if sync:
        fsync_dir(shard)
    os.rename(tmp, os.path.join(blob_dir, "data"))
    if sync:
        fsync_dir(blob_dir)
    if group:
        group.barrier()
    layers = os.path.join(root, "repositories", f"repo{worker}", "_layers", "sha256")
    link_dir = os.path.join(layers, digest)
    os.mkdir(link_dir)
    if sync:
        fsync_dir(layers)
    link_tmp = os.path.join(root, "tmp", f"{worker}-{n}.link")
    write_file(link_tmp, f"sha256:{digest}".encode(), sync)
    os.rename(link_tmp, os.path.join(link_dir, "link"))
    if sync:
        fsync_dir(link_dir)
    if group:
        group.barrier()


def worker_loop(root, worker, args, deadline, counts):
    os.makedirs(os.path.join(root, "repositories", f"repo{worker}", "_layers", "sha256"))
    n = 0
    while time.monotonic() < deadline:
        store_blob(root, worker, n, args.size, args.sync, args.group_sync)
        n += 1
    counts[worker] = n


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    sync_modes = parser.add_mutually_exclusive_group()
    sync_modes.add_argument("--no-sync", action="store_true")
    sync_modes.add_argument("--group", action="store_true")
    parser.add_argument("--size", type=int, default=65536)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    root = os.path.join(args.directory, f"durable-floor-{os.getpid()}")
    os.makedirs(os.path.join(root, "tmp"))
    args.sync = not (args.no_sync or args.group)
    args.group_sync = GroupSync(root) if args.group else None
    counts = [0] * args.workers
    deadline = time.monotonic() + args.seconds
    started = time.monotonic()
    cpu = os.times()
    threads = [
        threading.Thread(target=worker_loop, args=(root, w, args, deadline, counts))
        for w in range(args.workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    after = os.times()
    used = (after.user - cpu.user) + (after.system - cpu.system)
    total = sum(counts)
    mode = "no fsync" if args.no_sync else "6 fsyncs"
    if args.group:
        mode = f"group commit, {args.group_sync.calls / wall:.0f} syncfs/s"
    print(
        f"durable floor ({mode}, {args.size} B, {args.workers} workers): {total / wall:.0f} blobs/s, "
        f"{used / wall:.2f} cores"
    )
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
