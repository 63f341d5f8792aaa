"""What every command shares: fatal errors with djb's exit codes, and
output written the way djb's buffer library writes it."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import BinaryIO


class Fatal(Exception):
    """Stop the command: print ``pycdb: fatal: MESSAGE`` and exit ``code``
    (100 for bad usage or input, 111 for a system error)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def usage(text: str) -> Fatal:
    """A usage error (exit 100), e.g. ``raise usage("pycdb get FILE KEY [SKIP]")``."""
    return Fatal(100, f"usage: {text}")


# djb's wording of system errors (error_str.c), so that every command's
# messages read like ucspi-tcp's and freecdb's.


def _errtable() -> dict[int, str]:
    # Ordered as error_str() tests them: where two names share a number
    # (EAGAIN/EWOULDBLOCK, EOPNOTSUPP/ENOTSUP), the first text wins.
    names = [
        ("EINTR", "interrupted system call"),
        ("ENOMEM", "out of memory"),
        ("ENOENT", "file does not exist"),
        ("ETXTBSY", "text busy"),
        ("EIO", "input/output error"),
        ("EEXIST", "file already exists"),
        ("ETIMEDOUT", "timed out"),
        ("EINPROGRESS", "operation in progress"),
        ("EAGAIN", "temporary failure"),
        ("EWOULDBLOCK", "input/output would block"),
        ("EPIPE", "broken pipe"),
        ("EPERM", "permission denied"),
        ("EACCES", "access denied"),
        ("ENXIO", "device not configured"),
        ("EPROTO", "protocol error"),
        ("EISDIR", "is a directory"),
        ("ECONNREFUSED", "connection refused"),
        ("ENOTDIR", "not a directory"),
        ("ESRCH", "no such process"),
        ("E2BIG", "argument list too long"),
        ("ENOEXEC", "exec format error"),
        ("EBADF", "file descriptor not open"),
        ("ECHILD", "no child processes"),
        ("EDEADLK", "operation would cause deadlock"),
        ("EFAULT", "bad address"),
        ("ENOTBLK", "not a block device"),
        ("EBUSY", "device busy"),
        ("EXDEV", "cross-device link"),
        ("ENODEV", "device does not support operation"),
        ("EINVAL", "invalid argument"),
        ("ENFILE", "system cannot open more files"),
        ("EMFILE", "process cannot open more files"),
        ("ENOTTY", "not a tty"),
        ("EFBIG", "file too big"),
        ("ENOSPC", "out of disk space"),
        ("ESPIPE", "unseekable descriptor"),
        ("EROFS", "read-only file system"),
        ("EMLINK", "too many links"),
        ("EDOM", "input out of range"),
        ("ERANGE", "output out of range"),
        ("EALREADY", "operation already in progress"),
        ("ENOTSOCK", "not a socket"),
        ("EDESTADDRREQ", "destination address required"),
        ("EMSGSIZE", "message too long"),
        ("EPROTOTYPE", "incorrect protocol type"),
        ("ENOPROTOOPT", "protocol not available"),
        ("EPROTONOSUPPORT", "protocol not supported"),
        ("ESOCKTNOSUPPORT", "socket type not supported"),
        ("EOPNOTSUPP", "operation not supported"),
        ("EPFNOSUPPORT", "protocol family not supported"),
        ("EAFNOSUPPORT", "address family not supported"),
        ("EADDRINUSE", "address already used"),
        ("EADDRNOTAVAIL", "address not available"),
        ("ENETDOWN", "network down"),
        ("ENETUNREACH", "network unreachable"),
        ("ENETRESET", "network reset"),
        ("ECONNABORTED", "connection aborted"),
        ("ECONNRESET", "connection reset"),
        ("ENOBUFS", "out of buffer space"),
        ("EISCONN", "already connected"),
        ("ENOTCONN", "not connected"),
        ("ESHUTDOWN", "socket shut down"),
        ("ETOOMANYREFS", "too many references"),
        ("ELOOP", "symbolic link loop"),
        ("ENAMETOOLONG", "file name too long"),
        ("EHOSTDOWN", "host down"),
        ("EHOSTUNREACH", "host unreachable"),
        ("ENOTEMPTY", "directory not empty"),
        ("EPROCLIM", "too many processes"),
        ("EUSERS", "too many users"),
        ("EDQUOT", "disk quota exceeded"),
        ("ESTALE", "stale NFS file handle"),
        ("EREMOTE", "too many levels of remote in path"),
        ("EBADRPC", "RPC structure is bad"),
        ("ERPCMISMATCH", "RPC version mismatch"),
        ("EPROGUNAVAIL", "RPC program unavailable"),
        ("EPROGMISMATCH", "program version mismatch"),
        ("EPROCUNAVAIL", "bad procedure for program"),
        ("ENOLCK", "no locks available"),
        ("ENOSYS", "system call not available"),
        ("EFTYPE", "bad file type"),
        ("EAUTH", "authentication error"),
        ("ENEEDAUTH", "not authenticated"),
        ("ENOSTR", "not a stream device"),
        ("ETIME", "timer expired"),
        ("ENOSR", "out of stream resources"),
        ("ENOMSG", "no message of desired type"),
        ("EBADMSG", "bad message type"),
        ("EIDRM", "identifier removed"),
        ("ENONET", "machine not on network"),
        ("ERREMOTE", "object not local"),
        ("ENOLINK", "link severed"),
        ("EADV", "advertise error"),
        ("ESRMNT", "srmount error"),
        ("ECOMM", "communication error"),
        ("EMULTIHOP", "multihop attempted"),
        ("EREMCHG", "remote address changed"),
    ]
    table: dict[int, str] = {}
    for name, text in names:
        number = getattr(errno, name, None)
        if number is not None and number not in table:
            table[number] = text
    return table


_ERRTEXT = _errtable()


_ERRTEXT = _errtable()


def oserror_text(exc: BaseException) -> str:
    """djb's ``error_str()`` wording for the error behind ``exc`` (an
    OSError's errno, or MemoryError); the exception's own text, lower-cased,
    for an errno djb never named or an OSError raised with a text of its
    own."""
    if isinstance(exc, MemoryError):
        return "out of memory"
    number = getattr(exc, "errno", None)
    text = getattr(exc, "strerror", None)
    # An OSError raised with a text of its own says more than the errno.
    if number in _ERRTEXT and (text is None or text == os.strerror(number)):
        return _ERRTEXT[number]
    text = text or str(exc) or "unknown error"
    return text[:1].lower() + text[1:]


def split_options(
    args: list[str],
    usage_text: str,
    flags: tuple[str, ...] = (),
    valued: dict[str, str] | None = None,
) -> tuple[dict[str, str | bool], list[str]] | None:
    """The options and operands of ``args``; None when ``-h``/``--help``
    is given (the command prints its help).

    ``flags`` are the ``--name`` switches (True when given); ``valued``
    maps each option that takes a value to what it needs ("a file"), for
    the usage error; its value comes as ``--name VALUE`` or
    ``--name=VALUE``.  The options come back in the order last given (a
    repeated one moves to the end, so "the last one wins" can be read off
    the order).  ``--`` ends the options, ``-`` is an operand, and any
    other argument starting with ``-`` that is not one of these is a usage
    error naming it.
    """
    valued = valued or {}
    options: dict[str, str | bool] = {}
    operands: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            operands += args[i:]
            break
        if arg in ("-h", "--help"):
            return None
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name in valued:
                if not eq:
                    if i == len(args):
                        raise usage(f"{usage_text} (--{name} needs {valued[name]})")
                    value = args[i]
                    i += 1
                options.pop(name, None)
                options[name] = value
                continue
            if name in flags and not eq:
                options.pop(name, None)
                options[name] = True
                continue
        if arg.startswith("-") and arg != "-":
            raise usage(f"{usage_text} (unknown option {arg})")
        operands.append(arg)
    return options, operands


def write_err(text: str) -> None:
    """A message on standard error.  If it cannot be written (closed,
    full, a broken pipe) it is lost: the exit code still says what
    happened, as djb's tools do."""
    err = sys.stderr
    if err is None:
        return
    try:
        err.write(text)
        err.flush()
    except (OSError, ValueError):
        pass


class _Closed:
    """Standard output when the process started with it closed: every
    write fails as write(2) on fd 1 would."""

    def write(self, data: object) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    def flush(self) -> None:
        return None


def stdout() -> BinaryIO:
    """Standard output, for bytes."""
    out = sys.stdout
    if out is None:
        return _Closed()  # type: ignore[return-value]
    return out.buffer


def write_out(text: str) -> None:
    """Text on standard output, flushed: Fatal(111) when it cannot be
    written (closed, full, a broken pipe)."""
    out = sys.stdout
    try:
        if out is None:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        out.write(text)
        out.flush()
    except OSError as exc:
        raise Fatal(111, f"unable to write output: {oserror_text(exc)}") from None


class DjbOutput:
    """Standard output as djb's ``buffer_1``: an 8192-byte buffer written
    out only when full or flushed.  A tool that dies with ``strerr_die``
    never flushes it, so what reached the terminal before a fatal error
    depends on exactly these rules; emulating them is what makes the
    output byte-identical on malformed input too."""

    SIZE = 8192

    def __init__(self, out: BinaryIO | None = None) -> None:
        self._out = out if out is not None else stdout()
        self._buf = bytearray()

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._out.write(data)
        except OSError as exc:
            raise Fatal(111, f"unable to write output: {oserror_text(exc)}") from None

    def put(self, data: bytes | bytearray | memoryview) -> None:
        """buffer_put: flush first if ``data`` does not fit, then write
        whole buffer-sized pieces straight through."""
        n = self.SIZE
        if len(data) > n - len(self._buf):
            self.flush()
            view = memoryview(data)
            while len(view) > n:
                self._write(view[:n])
                view = view[n:]
            data = view
        self._buf += data

    def flush(self) -> None:
        if self._buf:
            data, self._buf = bytes(self._buf), bytearray()
            self._write(data)
        try:
            self._out.flush()
        except OSError as exc:
            raise Fatal(111, f"unable to write output: {oserror_text(exc)}") from None


def remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
