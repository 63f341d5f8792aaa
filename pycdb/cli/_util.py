"""What every command shares: fatal errors with djb's exit codes, and
output written the way djb's buffer library writes it."""

from __future__ import annotations

import contextlib
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


def oserror_text(exc: OSError) -> str:
    """djb's wording of a system error: the strerror text, lower case."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def write_err(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def stdout() -> BinaryIO:
    return sys.stdout.buffer


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
