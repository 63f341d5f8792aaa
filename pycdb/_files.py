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
from .errors import CorruptError

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


def _same_version(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def snapshot(
    path: str | os.PathLike[str] | bytes, *, copy_limit: int
) -> tuple[Any, os.stat_result]:
    """The file at ``path`` as one consistent version, with its ``fstat``:
    read into a private copy when it holds at most ``copy_limit`` bytes,
    mapped (as :func:`map_file`) when larger.

    A copy cannot be torn or truncated under its reader: a writer that
    rewrites the file in place (``cp new.cdb live.cdb``) changes the file,
    never the copy, where a mapping would make the next lookup die with
    SIGBUS.  The copy is checked to be one version of the file: when the
    file's size or times change while it is read, or it reads short or
    long, it is :class:`CorruptError` (the file is being written; try
    again).  Raises as :func:`open_read` does otherwise."""
    name = os.fsdecode(path)
    fd, st = open_read(path)
    try:
        if st.st_size > copy_limit:
            if not st.st_size:
                return b"", st
            try:
                return mmap.mmap(fd, 0, access=mmap.ACCESS_READ), st
            except (ValueError, OSError) as exc:
                raise OSError(getattr(exc, "errno", errno.EIO), str(exc), name) from None
        want = st.st_size
        parts: list[bytes] = []
        got = 0
        while got <= want:  # one byte more than expected: a file that grew reads long
            data = os.read(fd, want + 1 - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if got != want or not _same_version(st, after):
        raise CorruptError(
            f"{name}: the file changed while it was read ({want} bytes expected, {got} read): "
            "it is being written in place"
        )
    return (parts[0] if len(parts) == 1 else b"".join(parts)), st


def looks_like_text(path: str) -> bool:
    """Whether the regular file at ``path`` (not followed if a link) holds
    text rather than a leftover cdb: it is not empty and its first 2048
    bytes hold no NUL.  Every cdb, finished or cut short, has NULs there
    (a header's positions are below 2**24; a writer's leftover starts
    with the header's zeros)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or not st.st_size:
        return False
    with open(path, "rb") as f:
        return b"\0" not in f.read(2048)


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
