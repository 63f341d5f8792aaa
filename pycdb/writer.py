"""``pycdb.Writer``: build a cdb file and publish it atomically."""

from __future__ import annotations

import contextlib
import os
import secrets

from . import _backend
from ._args import Key
from ._format import LIMIT
from ._interface import Backend, MakerAPI

__all__ = ["Writer"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _create_temp(directory: str, base: str) -> tuple[int, str]:
    """A new file beside the target, created with mode 0644 & ~umask as
    cdbmake and tcprules create theirs (mkstemp would force 0600)."""
    for _ in range(100):
        path = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o644)
        except FileExistsError:
            continue
        return fd, path
    raise FileExistsError(f"no free temporary name for {base} in {directory}")


def fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (where the OS allows it)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory
    finally:
        os.close(fd)


class Writer:
    """Writes a new cdb file and renames it over ``path`` on success.

    Records go to a temporary file in the target's directory as they are
    added (``tmp_path`` names it, as the second argument of cdbmake and
    tcprules does; otherwise a fresh hidden name is used).  ``commit()``
    writes the hash tables, fsyncs, renames over ``path`` and fsyncs the
    directory; ``abort()`` removes the temporary file and leaves ``path``
    alone.  As a context manager it commits on a clean exit and aborts on
    an exception.

    The output is byte-identical to ``cdbmake`` given the same records in
    the same order.  A record that would take the file past 4 GiB raises
    :class:`pycdb.TooLargeError` and is not written; the writer can still
    commit what it has.
    """

    #: The largest file allowed: the format's 4 GiB (lower only in tests,
    #: through a subclass).
    _limit = LIMIT

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        tmp_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        if tmp_path is None:
            directory, base = os.path.split(os.path.abspath(self.path))
            fd, self.tmp_path = _create_temp(directory, base)
        else:
            self.tmp_path = os.fspath(tmp_path)
            fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o644)
        self._fd: int | None = fd
        self._done = False
        try:
            self._maker = _backend.current().Maker(fd, self._limit)
        except BaseException:
            self._discard()
            raise
        self.backend: str = _backend.current().NAME
        # The backend's own add, straight (see Reader.get).
        self.__dict__["add"] = self._maker.add

    def add(self, key: Key, value: Key) -> None:
        """Append a record.  Keys and values are bytes (``str`` is encoded
        as UTF-8; any other buffer is read in place).  Raises
        :class:`pycdb.TooLargeError`, writing nothing, when the finished
        file would pass the format's 4 GiB; OSError when the write fails
        (the writer then refuses everything but :meth:`abort`); ValueError
        once committed or aborted, or while another thread commits."""
        _finished()

    def _backend_maker(self) -> tuple[Backend, MakerAPI]:
        """The backend and the maker this writer streams to, for the rules
        compiler (pycdb.rules), which feeds the maker directly."""
        if self._done:
            _finished()
        return _backend.load(self.backend), self._maker

    def __len__(self) -> int:
        """Records added so far."""
        return int(self._maker.count)

    def _discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp_path)

    def _end(self) -> None:
        self.__dict__.pop("add", None)  # the class's add raises ValueError
        self._maker.close()

    def commit(self) -> None:
        """Finish the file and publish it over ``path``."""
        if self._done:
            raise ValueError("this cdb Writer was already committed or aborted")
        self._done = True
        fd = self._fd
        assert fd is not None  # open until commit or abort
        try:
            self._maker.finish()
            os.fsync(fd)
            self._fd = None
            os.close(fd)
            os.rename(self.tmp_path, self.path)
        except BaseException:
            self._end()
            self._discard()
            raise
        self._end()
        fsync_directory(os.path.dirname(os.path.abspath(self.path)))

    def abort(self) -> None:
        """Drop everything written; ``path`` is left as it was."""
        if self._done:
            return
        self._done = True
        self._end()
        self._discard()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def __del__(self) -> None:
        # A writer dropped without commit() or abort() leaves nothing behind.
        if not getattr(self, "_done", True):
            self.abort()


def _finished() -> None:
    raise ValueError("this cdb Writer was already committed or aborted")
