"""Peak memory: this process's, and that of a ``reproduce`` run in a child process
(``minikd bench --memory-of-reproduce``).

The child is this module run as a program, ``python -m minikd.experiments.bench_memory
<reproduce's flags>``: it runs ``reproduce.main`` and, on exit, prints its own
high-water mark (VmHWM, from /proc/self/status) as one line on stderr. Its
ru_maxrss would not do: Linux carries the parent's peak into a child across exec.
"""
from __future__ import annotations

import atexit
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
MARK = "MINIKD_VMHWM_KIB"   # the child's line on stderr: MARK <kibibytes>


def peak_rss_mib():
    """The process's peak resident set so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (MIB if sys.platform == "darwin" else 1024)


def report_high_water_mark():
    """Print ``MARK <VmHWM in KiB>`` on stderr (nothing where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    print(MARK, line.split()[1], file=sys.__stderr__, flush=True)
    except OSError:
        pass


def child_main(argv):
    """The child: ``reproduce.main(argv)``, reporting its peak memory on exit.

    One epoch learns nothing, and the health check would stop the teacher there as "at chance"
    before the other stages ran: this run measures memory, so its verdicts are off (in this
    process only)."""
    from .. import health
    from .reproduce import main
    atexit.register(report_high_water_mark)
    health.HealthCheck.check = lambda self, *args, **kwargs: None
    return main(argv)


def reproduce_memory(args):
    """Peak RSS of a child ``reproduce --profile quick --epochs 1`` (every stage, one epoch;
    the peak comes from the data and the models, not from the number of epochs; the health
    check's verdicts are off in the child, since one epoch learns nothing).
    With --train-size the child gets it too, and the 1 GiB target is not judged."""
    package_root = str(Path(__file__).resolve().parents[2])   # the child imports this same minikd
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="minikd-bench-") as tmp:
        cmd = ["--profile", "quick", "--epochs", "1", "--backend", args.backend,
               "--dataset", args.dataset, "--seed", str(args.seed), "--out", tmp]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        if args.train_size:
            cmd += ["--train-size", str(args.train_size)]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", __name__, *cmd], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
    shown = " ".join(c if c != tmp else "<tmp>" for c in cmd)
    res = {"command": f"python scripts/reproduce.py {shown}", "returncode": proc.returncode, "wall_sec": wall,
           "peak_rss_mib": None, "train_size": args.train_size}
    for line in proc.stderr.splitlines():
        if line.startswith(MARK + " "):
            res["peak_rss_mib"] = int(line.split()[1]) / 1024
    if res["peak_rss_mib"] is None:
        res["note"] = "no /proc/self/status here: the child's peak is unknown"
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith(MARK)]
        res["error"] = (lines or ["(no message)"])[-1]
    return res


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
