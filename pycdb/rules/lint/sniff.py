"""Which file is which, and reading it: every file lint reads goes
through :func:`pycdb._files.map_file`, the one routine that opens files.

A cdb starts with a 2048-byte header whose 256 entries each place a hash
table after the header and inside the file (docs/format.md §2, §10).
Rules text cannot pass that test unless it is huge: read as positions,
its bytes point at least 150 MB in (the lowest byte of ordinary text is
the tab, 0x09, and four of them make 0x09090909).  So a file that passes
is a cdb; a file that fails it is rules text, unless its name ends in
``.cdb``, in which case it is a damaged cdb (and lint reports it as
``corrupt``).

Reading does not wait for a FIFO that has no writer (it reads as empty)
and does not run away: a pipe is read to its end, as ``cat`` reads it,
but never past the cdb format's 4 GiB, and a device such as
``/dev/zero`` is refused (OSError), as :func:`pycdb._files.open_read`
refuses it.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

from ..._files import map_file
from ..._format import parse_header
from ...errors import CorruptError
from .report import Kind

__all__ = ["detect", "detect_bytes", "read"]


def detect_bytes(data: Any, name: str = "<bytes>") -> Kind:
    """``"cdb"`` when ``data`` (bytes or an mmap) starts with a sound cdb
    header, or when ``name`` ends in ``.cdb``; ``"text"`` otherwise."""
    if len(data) >= 2048:
        try:
            parse_header(data, name)
        except CorruptError:
            pass
        else:
            return "cdb"
    return "cdb" if name.endswith(".cdb") else "text"


def detect(path: str | os.PathLike[str]) -> Kind:
    """Whether the file at ``path`` is a cdb or rules text (see
    :func:`detect_bytes`).  A regular file is mapped, and only its header
    read; a pipe is read to its end, so its bytes are gone afterwards
    (:func:`pycdb.rules.lint.lint` reads a file once and tells its kind
    from those bytes).  OSError when it cannot be read."""
    buf, _ = map_file(path, streams=True)
    try:
        return detect_bytes(buf, os.fsdecode(path))
    finally:
        _release(buf)


def read(path: str | os.PathLike[str]) -> tuple[bytes, os.stat_result]:
    """The whole file at ``path`` as bytes, and the ``fstat`` of what was
    read: a regular file (mapped, then copied), or a pipe read to its end.
    OSError naming the file when it cannot be read, for a directory, and
    for anything else, such as a device (see :func:`pycdb._files.map_file`)."""
    buf, st = map_file(path, streams=True)
    try:
        return bytes(buf), st
    finally:
        _release(buf)


def _release(buf: Any) -> None:
    if isinstance(buf, mmap.mmap):
        buf.close()
