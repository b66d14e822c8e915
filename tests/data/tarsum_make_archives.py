"""Writes test archives with Python's tarfile into the directory given as argv[1].

Used by tests/tarsum_writers.rs. Every archive's entries are listed, field by field, in
that test, which computes the expected TarSum from the spec's rules independently.
"""
import io
import sys
import tarfile

out = sys.argv[1]


def add(tf, name, type=tarfile.REGTYPE, data=b"", mode=0o644, uid=1000, gid=1000,
        mtime=1700000000, linkname="", devmajor=0, devminor=0, pax=None, uname="alice"):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.mode = mode
    ti.uid = uid
    ti.gid = gid
    ti.mtime = mtime
    ti.uname = uname
    ti.gname = "staff"
    ti.linkname = linkname
    ti.devmajor = devmajor
    ti.devminor = devminor
    if pax:
        ti.pax_headers = pax
    if type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    else:
        tf.addfile(ti)


def pax_archive():
    with tarfile.open(f"{out}/pax.tar", "w", format=tarfile.PAX_FORMAT) as tf:
        add(tf, "dir", tarfile.DIRTYPE, mode=0o755)
        add(tf, "dir/hello.txt", data=b"hello world\n")
        add(tf, "dir/link", tarfile.SYMTYPE, mode=0o777, linkname="hello.txt")
        add(tf, "dir/hard", tarfile.LNKTYPE, linkname="dir/hello.txt")
        add(tf, "dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
        add(tf, "dev/sda", tarfile.BLKTYPE, mode=0o660, devmajor=8, devminor=0)
        add(tf, "fifo", tarfile.FIFOTYPE)
        add(tf, "x.bin", data=b"xattrs", pax={
            "SCHILY.xattr.user.b": "2",
            "SCHILY.xattr.user.A": "1",
            "SCHILY.xattr.user.empty": "",
            "LIBARCHIVE.xattr.user.ignored": "x",
            "comment": "not hashed",
        })
        add(tf, "long/" + "n" * 200, data=b"long name")
        add(tf, "sym2", tarfile.SYMTYPE, mode=0o777, linkname="t" * 150)
        add(tf, "biguid", data=b"u", uid=3000000, gid=4000000)
        add(tf, "negtime", data=b"t", mtime=-1.5)
        add(tf, "empty", data=b"")
        add(tf, "unicode-\u00e9", data=b"e")


def gnu_archive():
    with tarfile.open(f"{out}/gnu.tar", "w", format=tarfile.GNU_FORMAT) as tf:
        add(tf, "long/" + "g" * 150, data=b"gnu long name")
        add(tf, "glink", tarfile.SYMTYPE, mode=0o777, linkname="k" * 120)
        add(tf, "b256", data=b"base256", uid=2 ** 22, gid=2 ** 30, mtime=-100)
        add(tf, "d", tarfile.DIRTYPE, mode=0o755)


def ustar_archive():
    with tarfile.open(f"{out}/ustar.tar", "w", format=tarfile.USTAR_FORMAT) as tf:
        add(tf, "p" * 60 + "/" + "q" * 60 + "/file.txt", data=b"prefix")
        add(tf, "plain", data=b"p")


def duplicates_archive():
    with tarfile.open(f"{out}/dups.tar", "w", format=tarfile.USTAR_FORMAT) as tf:
        add(tf, "dup.txt", data=b"first")
        add(tf, "other", data=b"o")
        add(tf, "./dup.txt", data=b"second")
        add(tf, "z/../dup.txt", data=b"third")
        add(tf, "another", data=b"a")


def global_archive():
    with tarfile.open(f"{out}/global.tar", "w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": "made by python",
                                   "SCHILY.xattr.user.g": "gv"}) as tf:
        add(tf, "after-global", data=b"g")


def crosscheck_archive():
    """Same content as the GNU tar archives made by the test."""
    with tarfile.open(f"{out}/cross.tar", "w", format=tarfile.GNU_FORMAT) as tf:
        add(tf, "c/", tarfile.DIRTYPE, mode=0o755, uid=0, gid=0, uname="root")
        add(tf, "c/a.txt", data=b"alpha\n", uid=0, gid=0, uname="root")
        add(tf, "c/b.txt", data=b"beta beta\n" * 100, uid=0, gid=0, uname="root")


pax_archive()
gnu_archive()
ustar_archive()
duplicates_archive()
global_archive()
crosscheck_archive()
