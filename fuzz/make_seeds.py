"""Write a seed corpus of small cdb files for the fuzzers.

    python fuzz/make_seeds.py DIR

Sound files made by pycdb.Writer (byte-identical to cdbmake's), covering
the shapes the reader must walk: empty, duplicates, empty keys and
values, keys with hash 0, many records in one table, binary keys.  The
fuzzers mutate them into the corrupt files.
"""

from __future__ import annotations

import os
import sys
import tempfile

import pycdb

HASH0 = [b"om6r8\x8e\xf5", b"epjeq\x8a\xe4", b"ootpt@\xf5"]

SEEDS: dict[str, list[tuple[bytes, bytes]]] = {
    "empty": [],
    "one": [(b"a", b"1")],
    "dups": [(b"k", b"1"), (b"", b""), (b"k", b"2"), (b"", b"x"), (b"k", b"")],
    "hash0": [(k, b"z") for k in HASH0] + [(HASH0[0], b"again")],
    "binary": [(bytes([i, 0, 255 - i]), bytes([i])) for i in range(0, 256, 37)],
    "words": [(w.encode(), w.upper().encode()) for w in ["the", "quick", "brown", "fox", "jumps"]],
}


def one_table(n: int, table: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        stem = b"t%d" % i
        last = ((pycdb.hash(stem) * 33) & 255) ^ table
        out.append((stem + bytes([last]), b"%d" % i))
    return out


SEEDS["onetable"] = one_table(12, 3)


def main(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, records in SEEDS.items():
            path = os.path.join(tmp, name)
            with pycdb.Writer(path) as w:
                for k, v in records:
                    w.add(k, v)
            with open(path, "rb") as f:
                data = f.read()
            with open(os.path.join(directory, f"seed-{name}.cdb"), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python fuzz/make_seeds.py DIR")
    main(sys.argv[1])
