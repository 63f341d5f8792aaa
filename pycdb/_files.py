"""Opening a file for reading: the one routine every reader of a cdb or a
rules file goes through.

djb's ``open_read`` opens with ``O_NONBLOCK``, so a FIFO named where a
file belongs never stops the program at ``open()``; tcprulescheck then
refuses anything it cannot map.  pycdb does the same: a regular file is
mapped (or copied), a directory is ``IsADirectoryError``, and anything
else (a FIFO, a device such as ``/dev/zero``, a socket) is an OSError
naming the file, except that the whole-file readers (validation, lint,
decompilation, the dump) may also take a pipe (``/dev/stdin``), which is
read to its end, never past the cdb format's 4 GiB.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import stat
from collections.abc import Iterator
from typing import Any

from ._format import LIMIT

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class FileTypeError(OSError):
    """The path opened, but names a kind of file the reader does not take
    (a device; a FIFO, pipe or socket unless streams are taken): errno
    EINVAL, the text saying which kind.  An OSError like any other for a
    caller that does not need to tell it from a failed ``open()``; a
    command that words the two differently (djb's ``unable to open`` and
    ``unable to read``) catches it first."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"  # pragma: no cover - every other type is named above


def _is_stream(mode: int) -> bool:
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def open_read(
    path: str | os.PathLike[str] | bytes, *, streams: bool = False
) -> tuple[int, os.stat_result]:
    """A descriptor for reading ``path`` and its ``fstat``.  Opened
    without blocking (a FIFO with no writer does not stop ``open()``);
    OSError naming the file when it cannot be opened, ``IsADirectoryError``
    for a directory, and :class:`FileTypeError` (errno EINVAL) for
    anything but a regular file, or a pipe when ``streams`` is true (then
    read as blocking).  The caller closes the descriptor."""
    name = os.fsdecode(path)
    fd = os.open(path, _FLAGS)
    try:
        st = os.fstat(fd)
        mode = st.st_mode
        if stat.S_ISREG(mode):
            return fd, st
        if streams and _is_stream(mode):
            # Reads wait for a writer's data, as cat's do; a FIFO that no
            # one has open for writing reads as empty at once.
            os.set_blocking(fd, True)
            return fd, st
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        what = "a regular file or a pipe" if streams else "a regular file"
        raise FileTypeError(errno.EINVAL, f"not {what} ({_kind(mode)})", name)
    except BaseException:
        os.close(fd)
        raise


def _read_stream(fd: int, name: str) -> bytes:
    """A pipe read to its end, refused past the format's 4 GiB."""
    parts: list[bytes] = []
    have = 0
    while True:
        data = os.read(fd, 1 << 20)
        if not data:
            return b"".join(parts)
        parts.append(data)
        have += len(data)
        if have > LIMIT:
            raise OSError(errno.EFBIG, "more than a cdb's 4 GiB", name)


def map_file(
    path: str | os.PathLike[str] | bytes, *, streams: bool = False
) -> tuple[Any, os.stat_result]:
    """The whole file at ``path``, mapped read-only (``b""`` when empty:
    an empty file cannot be mapped), with the ``fstat`` of the file that
    was mapped; a pipe, where ``streams`` allows one, read to its end.
    Raises as :func:`open_read` does, and OSError naming the file when
    it cannot be mapped or read."""
    name = os.fsdecode(path)
    fd, st = open_read(path, streams=streams)
    try:
        if _is_stream(st.st_mode):
            return _read_stream(fd, name), st
        if not st.st_size:
            return b"", st
        try:
            return mmap.mmap(fd, 0, access=mmap.ACCESS_READ), st
        except ValueError:  # emptied between fstat and mmap
            return b"", st
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, name) from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def mapped(path: str | os.PathLike[str] | bytes, *, streams: bool = False) -> Iterator[Any]:
    """:func:`map_file`'s bytes for the length of a ``with`` block, the
    mapping closed at its end."""
    buf, _ = map_file(path, streams=streams)
    try:
        yield buf
    finally:
        if isinstance(buf, mmap.mmap):
            with contextlib.suppress(BufferError):  # a view escaped: GC unmaps
                buf.close()
