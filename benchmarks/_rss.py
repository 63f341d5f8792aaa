"""Peak memory of one task, in a fresh process: ``python _rss.py TASK IMPL N DIR``.

Prints the peak resident set size in MB.  Keys are generated on the fly
from a shuffled 32-bit array so the measurement is the implementation's,
not a list of a million Python bytes objects.  TASK "baseline" does the
same loop without building anything (the interpreter's own share).
"""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
from array import array


def keys(n: int) -> array:
    order = array("I", range(n))
    rnd = random.Random(20261126)
    for i in range(n - 1, 0, -1):  # Fisher-Yates on the array, no list
        j = rnd.randrange(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def main() -> None:
    task, impl, n_text, directory = sys.argv[1:5]
    n = int(n_text)
    path = os.path.join(directory, f"rss-{impl}.cdb")
    value = b"v" * 16
    if impl == "cdbmake":
        src = os.path.join(directory, "records.txt")
        with open(src, "rb") as f:
            subprocess.run(["cdbmake", path, path + ".tmp"], stdin=f, check=True)
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        return
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
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main()
