"""The cffi builder (API mode, out of line) for pycdb's C core.

setup.py names this file in ``cffi_modules``; it is not shipped in the
wheel.  It makes one extension module, ``pycdb._cdb``, whose interface is
``pycdb.h`` read verbatim into ``cdef()``: the header is the one place
the C interface is written down.
"""

from __future__ import annotations

import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: The C core, listed (never globbed: a stray file must not be compiled in).
SOURCES = ["cdb_read.c", "cdb_make.c", "rules_parse.c", "rules_check.c"]


def _version() -> str:
    with open(os.path.join(ROOT, "pycdb", "_version.py"), encoding="utf-8") as f:
        match = re.search(r'__version__ = "([^"]+)"', f.read())
    assert match, "pycdb/_version.py has no __version__"
    return match.group(1)


with open(os.path.join(HERE, "pycdb.h"), encoding="utf-8") as f:
    _DECLARATIONS = f.read()

# The source cffi generates calls each C function between
# Py_BEGIN_ALLOW_THREADS/Py_END_ALLOW_THREADS and saves errno after it.
# Every call in pycdb.h is either short (a lookup or an add: well under a
# microsecond, less than releasing and taking back the GIL costs) or goes
# through the glue in pyglue.c, which releases the GIL itself; and no
# function reports through errno (the maker keeps its own).  So both are
# switched off for the generated wrappers.  Were cffi to stop spelling its
# wrappers with these macros, the overrides would simply not apply: calls
# would release the GIL and save errno again, correct and a little slower.
# tests/test_gil.py checks that the long calls really release the GIL.
_PREAMBLE = f"""
#include <stdint.h>
#include <stddef.h>
#include "pycdb.h"
#include "pyglue.c"

#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {{
#define Py_END_ALLOW_THREADS }}
#undef _cffi_restore_errno
#undef _cffi_save_errno
#define _cffi_restore_errno() ((void)0)
#define _cffi_save_errno() ((void)0)

const char *pycdb_version(void) {{ return "{_version()}"; }}
"""

ffibuilder = FFI()
ffibuilder.cdef(_DECLARATIONS)
ffibuilder.set_source(
    "pycdb._cdb",
    _PREAMBLE,
    sources=[os.path.join("src_c", name) for name in SOURCES],
    include_dirs=[HERE],
    depends=[os.path.join("src_c", name) for name in ("pycdb.h", "internal.h", "pyglue.c")],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    # Build in place, for working on the C code without reinstalling.
    import subprocess
    import sys

    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=ROOT, check=True)
