"""``pycdb.Writer``: build a cdb file and publish it atomically."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets

from . import _backend
from ._args import Key
from ._files import looks_like_text
from ._format import LIMIT
from ._interface import Backend, MakerAPI

__all__ = ["Writer"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
#: Where an unnamed file gets its name from (linkat with AT_SYMLINK_FOLLOW).
_PROC_FD = "/proc/self/fd"


def _hidden_name(directory: str, base: str) -> str:
    return os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")


def _create_named(directory: str, base: str) -> tuple[int, str]:
    """A new file with a fresh hidden name beside the target, mode 0644 &
    ~umask as cdbmake and tcprules create theirs (mkstemp forces 0600)."""
    for _ in range(100):
        path = _hidden_name(directory, base)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o644)
        except FileExistsError:
            continue
        return fd, path
    raise FileExistsError(f"no free temporary name for {base} in {directory}")


def _create_unnamed(directory: str) -> int | None:
    """A new file in ``directory`` with no name at all (Linux
    ``O_TMPFILE``), mode 0644 & ~umask, or None where the system or the
    file system cannot make one (or cannot name it later, without
    /proc).  If the process dies before commit, the kernel frees it:
    nothing is left behind."""
    if not _O_TMPFILE or not os.path.isdir(_PROC_FD):
        return None
    try:
        return os.open(directory or ".", _O_TMPFILE | os.O_WRONLY | _O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # no O_TMPFILE here (kernel or file system): name it instead
        raise


def _link_unnamed(fd: int, path: str) -> None:
    """Give the unnamed file open at ``fd`` the name ``path``:
    ``linkat(AT_FDCWD, "/proc/self/fd/FD", dir, name, AT_SYMLINK_FOLLOW)``.
    (Naming the directory by a descriptor makes Python call linkat with
    that flag; with none it calls link(), which links the /proc entry
    itself and fails.)"""
    directory, name = os.path.split(os.path.abspath(path))
    dfd = os.open(directory, os.O_RDONLY | _O_CLOEXEC)
    try:
        os.link(f"{_PROC_FD}/{fd}", name, dst_dir_fd=dfd, follow_symlinks=True)
    finally:
        os.close(dfd)


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

    Records go, as they are added, to a new file in the directory of
    ``tmp_path`` or, without one, of ``path``.  On Linux that file has no
    name until :meth:`commit` (``O_TMPFILE``): a process killed while
    writing (SIGTERM, SIGKILL, a crash) leaves nothing behind.  Elsewhere
    it is a hidden file (``.NAME.RANDOM.tmp``) removed on abort or
    failure.  ``commit()`` writes the hash tables, fsyncs, gives the file
    the name ``tmp_path`` (or a hidden one), renames it over ``path`` and
    fsyncs the directory; ``abort()`` drops the file and leaves ``path``
    alone.  As a context manager it commits on a clean exit and aborts on
    an exception.

    ``tmp_path`` is the second argument of cdbmake and tcprules.  Unlike
    them, pycdb never opens it: a leftover file there is replaced at
    commit, and a symbolic link there is replaced, never followed (its
    target is not touched).  A ``tmp_path`` that holds text rather than
    a leftover cdb (``pycdb make rules.cdb rules`` with the arguments
    swapped) is refused with FileExistsError before anything is written.

    A Writer belongs to the process that made it: in a child of
    ``fork()`` it neither commits nor removes anything when dropped.

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
        #: The name the file takes at commit before the rename (cdbmake's
        #: TMP), or None for a fresh hidden one.
        self.tmp_path: str | None = None if tmp_path is None else os.fspath(tmp_path)
        self._pid = os.getpid()
        self._done = True  # until the maker is made: nothing to abort before
        self._fd: int | None = None
        #: The file's name while it is written, when it has one.
        self._named: str | None = None
        if self.tmp_path is not None and looks_like_text(self.tmp_path):
            raise FileExistsError(
                errno.EEXIST,
                "holds text, not a leftover cdb: refusing to replace it",
                self.tmp_path,
            )
        directory, base = os.path.split(os.path.abspath(self.tmp_path or self.path))
        fd = _create_unnamed(directory)
        if fd is None:
            fd, self._named = _create_named(directory, base)
        self._fd = fd
        try:
            self._maker = _backend.current().Maker(fd, self._limit)
        except BaseException:
            self._discard()
            raise
        self._done = False
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
        if self._named is not None and os.getpid() == self._pid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._named)
        self._named = None

    def _end(self) -> None:
        self.__dict__.pop("add", None)  # the class's add raises ValueError
        self._maker.close()

    def _give_name(self, fd: int) -> str:
        """Name the finished file: ``tmp_path`` (whatever is there now is
        replaced, a link never followed) or a fresh hidden name.  Returns
        the name."""
        if self._named is not None:
            if self.tmp_path is None:
                return self._named
            os.rename(self._named, self.tmp_path)  # replaces a link, not its target
            self._named = self.tmp_path
            return self.tmp_path
        if self.tmp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp_path)  # a leftover, or a link: never followed
            _link_unnamed(fd, self.tmp_path)
            self._named = self.tmp_path
            return self.tmp_path
        directory, base = os.path.split(os.path.abspath(self.path))
        for _ in range(100):
            name = _hidden_name(directory, base)
            try:
                _link_unnamed(fd, name)
            except FileExistsError:
                continue
            self._named = name
            return name
        raise FileExistsError(f"no free temporary name for {base} in {directory}")

    def commit(self) -> None:
        """Finish the file and publish it over ``path``.  Raises OSError
        (nothing published, nothing left behind) when a write, the fsync
        or the rename fails; ValueError when already committed or aborted,
        or in a child process of the one that made the writer."""
        if self._done:
            raise ValueError("this cdb Writer was already committed or aborted")
        if os.getpid() != self._pid:
            raise ValueError("this cdb Writer belongs to another process (made before a fork)")
        self._done = True
        fd = self._fd
        assert fd is not None  # open until commit or abort
        try:
            self._maker.finish()
            os.fsync(fd)
            staged = self._give_name(fd)
            os.rename(staged, self.path)
            self._named = None
        except BaseException:
            self._end()
            self._discard()
            raise
        self._end()
        self._discard()
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
        # A writer dropped without commit() or abort() leaves nothing behind
        # (and one inherited across fork() touches nothing of its parent's).
        if not getattr(self, "_done", True):
            self.abort()


def _finished() -> None:
    raise ValueError("this cdb Writer was already committed or aborted")
