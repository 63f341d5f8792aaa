"""Peak memory of one task: ``python _rss.py TASK IMPL N DIR``.

Prints the peak resident set size in MB of a worker process that does the
task.  The worker is started from this small process, not from pytest:
Linux carries a forked parent's resident high-water mark across exec, so
a child of pytest would report pytest's size.  Keys are generated on the fly
from a shuffled 32-bit array so the measurement is the implementation's,
not a list of a million Python bytes objects.  TASK "baseline" does the
same loop without building anything (the interpreter's own share).
"""

from __future__ import annotations

import os
import random
import sys
from array import array


def keys(n: int) -> array:
    order = array("I", range(n))
    rnd = random.Random(20261126)
    for i in range(n - 1, 0, -1):  # Fisher-Yates on the array, no list
        j = rnd.randrange(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def measure() -> None:
    """Run this script's task in a worker and print the worker's peak."""
    pid = os.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, __file__, "--worker", *sys.argv[1:5]])
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"the worker failed: {status}")
    print(usage.ru_maxrss / 1024)


def work() -> None:
    task, impl, n_text, directory = sys.argv[2:6]
    n = int(n_text)
    path = os.path.join(directory, f"rss-{impl}.cdb")
    value = b"v" * 16
    if impl == "cdbmake":
        src = os.path.join(directory, "records.txt")
        with open(src, "rb") as f:
            os.dup2(f.fileno(), 0)
        os.execvp("cdbmake", ["cdbmake", path, path + ".tmp"])
    order = keys(n)
    if task == "baseline":
        for i in order:
            b"key%08d" % i
    elif impl in ("pycdb-cffi", "pycdb-pure"):
        os.environ["PYCDB_BACKEND"] = impl.split("-")[1]
        import pycdb

        with pycdb.Writer(path) as w:
            add = w.add
            for i in order:
                add(b"key%08d" % i, value)
    elif impl == "cdbx":
        import cdbx

        maker = cdbx.CDB.make(path)
        for i in order:
            maker.add(b"key%08d" % i, value)
        maker.commit().close()
    elif impl == "pure-cdb":
        import cdblib

        with open(path, "wb") as f, cdblib.Writer(f) as w:
            for i in order:
                w.put(b"key%08d" % i, value)
    else:
        raise SystemExit(f"unknown implementation {impl}")


if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        work()
    else:
        measure()
