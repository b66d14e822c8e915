"""Plots a soak's samples (tests/soak.rs, SOAK_CSV) to a PNG: the server's VmRSS, RssAnon and
VmHWM over time on top, its open file descriptors below, a dotted line at every SIGKILL (where
the `kills` column steps up) and the run's totals in the title.

    python3 benches/soak_plot.py SAMPLES.csv OUT.png TITLE

Needs matplotlib (benches/soak.sh installs it in a venv under /tmp).
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def kill_times(rows):
    """The last sample before each step of `kills` (the kill follows within a sample's time)."""
    return [b["time_s"] for b, a in zip(rows, rows[1:]) if a["kills"] > b["kills"]]


def series(rows, field, scale=1.0):
    """Minutes and values of `field`, with a gap (NaN) wherever the server changed: a line
    never joins two lifetimes across the restart between them."""
    xs, ys = [], []
    for before, row in zip([None] + rows, rows):
        if before is not None and row["lifetime"] != before["lifetime"]:
            xs.append(float("nan"))
            ys.append(float("nan"))
        xs.append(row["time_s"] / 60)
        ys.append(row[field] / scale)
    return xs, ys


def plot(rows, out, title):
    fig, (mem, fds) = plt.subplots(2, 1, sharex=True, figsize=(12, 7))
    mem.plot(*series(rows, "rss_kib", 1024), label="VmRSS", lw=0.8)
    mem.plot(*series(rows, "anon_kib", 1024), label="RssAnon", lw=0.8)
    mem.plot(*series(rows, "hwm_kib", 1024), label="VmHWM", lw=0.6, ls="--")
    mem.set_ylabel("server memory (MiB)")
    mem.set_ylim(bottom=0)
    fds.plot(*series(rows, "fds"), label="open fds", color="tab:green", lw=0.8)
    fds.set_ylabel("open file descriptors")
    fds.set_ylim(bottom=0)
    fds.set_xlabel("minutes since the soak started")
    for t in kill_times(rows):
        for ax in (mem, fds):
            ax.axvline(t / 60, color="tab:red", ls=":", lw=0.6, alpha=0.7)
    mem.plot([], [], color="tab:red", ls=":", lw=0.6, label="SIGKILL")
    mem.legend(loc="upper right", ncol=4, fontsize="small")
    fds.legend(loc="upper right", fontsize="small")
    last = rows[-1]
    fig.suptitle(
        f"{title}: {int(last['requests_ok'])} requests ok, {int(last['errors'])} errors, "
        f"{int(last['kills'])} SIGKILLs in {last['time_s'] / 60:.0f} min"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    plot(read(sys.argv[1]), sys.argv[2], sys.argv[3])
