"""The cffi builder (API mode, out of line) for pycdb's C core.

setup.py names this file in ``cffi_modules``; it is not shipped in the
wheel.  It makes two extension modules from the same header and sources,
differing only in whether calls release the GIL (see ``_KEEP_GIL``).  The declarations come verbatim from ``pycdb.h``, so the header is
the one place the C interface is written down.
"""

from __future__ import annotations

import glob
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _version() -> str:
    with open(os.path.join(ROOT, "pycdb", "_version.py"), encoding="utf-8") as f:
        match = re.search(r'__version__ = "([^"]+)"', f.read())
    assert match, "pycdb/_version.py has no __version__"
    return match.group(1)


with open(os.path.join(HERE, "pycdb.h"), encoding="utf-8") as f:
    _DECLARATIONS = f.read()

# cffi releases the GIL around every call.  For lookups, which take a
# few hundred nanoseconds and never block on anything but a page fault
# (as cdbx and the pure backend do, holding it), the release and
# re-acquire cost more than the call; so the lookup module keeps it.
# The generated wrappers are spelled with these two macros, and the
# preamble is compiled before them.
_KEEP_GIL = """
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#define Py_END_ALLOW_THREADS }
"""


def _module(name: str, keep_gil: bool) -> FFI:
    ffi = FFI()
    ffi.cdef(_DECLARATIONS)
    ffi.set_source(
        name,
        (_KEEP_GIL if keep_gil else "")
        + f"""
#include <stdint.h>
#include <stddef.h>
#include "pycdb.h"
const char *pycdb_version(void) {{ return "{_version()}"; }}
""",
        sources=sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(HERE, "*.c"))),
        include_dirs=[os.path.relpath(HERE, ROOT)],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    )
    return ffi


#: Writing and parsing: may run long or block in write(), so the GIL is
#: released as cffi does by default.
ffibuilder = _module("pycdb._cdb_c", keep_gil=False)
#: Lookups: short calls that keep the GIL.
ffibuilder_lookup = _module("pycdb._cdb_lookup", keep_gil=True)

if __name__ == "__main__":
    # Build in place, for working on the C code without reinstalling.
    os.chdir(ROOT)
    for builder in (ffibuilder, ffibuilder_lookup):
        builder.compile(tmpdir=os.path.join(ROOT, "build", "cffi"), verbose=True)
