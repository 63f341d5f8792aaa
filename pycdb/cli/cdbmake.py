"""``pycdb cdbmake OUT TMP < input``: freecdb's ``cdbmake OUT TMP``.

Reads ``+klen,dlen:key->data`` lines ended by an empty line from standard
input and publishes them as the cdb OUT, by way of TMP (docs/format.md
§9 and §11).  It reports exactly cdbmake.c's errors and entry numbers
(including its "unexpected end if input") and fails at the same 32-bit
overflow points (docs/format.md §8); records are streamed to
:class:`pycdb.Writer` as they are parsed, so the output file is
byte-identical to cdbmake's and created with mode 0644 minus the umask,
as ``open_trunc`` does.

Deliberate differences from freecdb (besides those of
:mod:`pycdb.cli.cdbtools`):

* On any error ``pycdb cdbmake`` removes TMP (freecdb leaves a partial TMP
  behind).  OUT is never touched on an error, by either.
* It holds one record (key and data) in memory at a time, where cdbmake
  streams even a single record byte by byte.
* Where cdbmake's 32-bit arithmetic overflows it fails at the same point
  with the same exit code (111) but names the cause, the cdb format's 4 GiB
  limit, and the entry (freecdb says "out of memory").
"""

from __future__ import annotations

import re
import sys
from typing import IO, Callable

from .._format import HEADER_SIZE, LIMIT
from ..errors import TooLargeError
from ..writer import Writer
from ._util import Fatal, oserror_text, usage
from .cdbtools import USAGE, operands

#: The largest file position cdbmake accepts (its ``posplus`` fails past
#: 32 bits); a module constant so the tests can exercise the overflow paths
#: without writing 4 GiB.
_LIMIT = LIMIT
#: What freecdb calls "out of memory" when its 32-bit arithmetic overflows.
_PAST_LIMIT = "the cdb format's 4 GiB limit (every position must fit in 32 bits)"


def main(command: str, args: list[str]) -> int:
    """``pycdb cdbmake OUT TMP``: cdbmake's exit code and messages;
    failures raise :class:`Fatal`."""
    given = operands("cdbmake", args, 2, 2)
    if given is None:
        return 0
    if not given[0] or not given[1]:
        raise usage(USAGE["cdbmake"])
    stdin = sys.stdin
    _cdbmake(given[0], given[1], None if stdin is None else stdin.buffer)
    return 0


_HEAD = re.compile(rb"\+([0-9]{0,9}),([0-9]{0,9}):")
_READ_SIZE = 1 << 16


class _ReadError(Exception):
    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.exc = exc


class _Input:
    """Standard input in blocks, with cdbmake's getch() on top."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._read: Callable[[int], bytes] = getattr(stream, "read1", None) or stream.read
        self.buf = b""
        self.i = 0
        self._eof = False

    def more(self) -> bool:
        """Refill an exhausted block; False at the end of the input."""
        if self._eof:
            return False
        try:
            data = self._read(_READ_SIZE)
        except OSError as exc:
            raise _ReadError(exc) from None
        if not data:
            self._eof = True
            return False
        self.buf = data
        self.i = 0
        return True

    def getc(self) -> int:
        """The next byte, or -1 at the end of the input."""
        if self.i >= len(self.buf) and not self.more():
            return -1
        c = self.buf[self.i]
        self.i += 1
        return c

    def take(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes, or None when the input ends first.  Never
        allocates more than was actually read: a claimed length of 4 GiB
        on a short input costs the short input."""
        buf, i = self.buf, self.i
        if len(buf) - i >= n:
            self.i = i + n
            return buf[i : i + n]
        parts = [buf[i:]]
        n -= len(buf) - i
        self.i = len(buf)
        while n:
            if not self.more():
                return None
            piece = self.buf[:n]
            self.i = len(piece)
            n -= len(piece)
            parts.append(piece)
        return b"".join(parts)


def _cdbmake(out_path: str, tmp_path: str, stream: IO[bytes] | None) -> None:
    def die_write(text: str) -> Fatal:
        return Fatal(111, f"unable to create {tmp_path}: {text}")

    try:
        writer = Writer(out_path, tmp_path=tmp_path)
    except OSError as exc:
        raise die_write(oserror_text(exc)) from None
    try:
        _cdbmake_records(writer, stream, die_write)
        try:
            writer.commit()
        except TooLargeError:
            raise die_write(_PAST_LIMIT) from None
        except OSError as exc:
            if exc.filename2 is not None:  # os.rename names both files
                raise Fatal(
                    111, f"unable to rename {tmp_path} to {out_path}: {oserror_text(exc)}"
                ) from None
            raise die_write(oserror_text(exc)) from None
        except MemoryError:
            raise die_write("out of memory") from None
    except BaseException:
        writer.abort()
        raise


def _cdbmake_records(
    writer: Writer, stream: IO[bytes] | None, die_write: Callable[[str], Fatal]
) -> None:
    """Parse cdbmake.c's input format with its exact errors, adding each
    record as soon as it is complete."""
    if stream is None:
        raise Fatal(111, "unable to read input: entry 1: file descriptor not open")
    src = _Input(stream)
    entry = 0
    pos = HEADER_SIZE  # cdb_make's c->pos, to fail where its posplus() fails
    count = 0
    too_large = False  # the writer refused: cdb_make_finish() will fail

    def die_read(text: str) -> Fatal:
        return Fatal(111, f"unable to read input: entry {entry}: {text}")

    def getch() -> int:
        c = src.getc()
        if c < 0:
            raise die_read("unexpected end if input")
        return c

    def number(stop: int, what: str) -> int:
        value = 0
        while True:
            c = getch()
            if c == stop:
                return value
            if not 0x30 <= c <= 0x39:
                raise die_read(f"bad {what} format")
            if value > 429496720:
                raise die_write(f"entry {entry}: the {what} passes {LIMIT}, {_PAST_LIMIT}")
            value = value * 10 + (c - 0x30)

    def add(key: bytes, data: bytes) -> None:
        # cdb_make_addend(): the position must stay within 32 bits.
        nonlocal pos, count, too_large
        pos += 8 + len(key) + len(data)
        if pos > _LIMIT:
            raise die_write(
                f"entry {entry}: a record with a {len(key)}-byte key and a {len(data)}-byte "
                f"value would take the file past {_PAST_LIMIT}"
            )
        count += 1
        if too_large:
            return
        try:
            writer.add(key, data)
        except TooLargeError:
            # The writer counts the hash tables too; cdbmake notices that
            # only when it writes them, after reading the rest of the input
            # (and after any error in it), so keep parsing.
            too_large = True
        except MemoryError:
            raise die_write("out of memory") from None
        except OSError as exc:
            raise die_write(oserror_text(exc)) from None

    head = _HEAD
    try:
        while True:
            entry += 1
            buf, i = src.buf, src.i
            if i < len(buf):
                # Fast path: a whole record inside the current block.
                if buf[i] == 0x0A:
                    src.i = i + 1
                    break
                m = head.match(buf, i)
                if m is not None:
                    k = m.end()
                    kend = k + (int(m[1]) if m[1] else 0)
                    dend = kend + 2 + (int(m[2]) if m[2] else 0)
                    if dend < len(buf) and buf[dend] == 0x0A and buf[kend : kend + 2] == b"->":
                        src.i = dend + 1
                        add(buf[k:kend], buf[kend + 2 : dend])
                        continue
            # Slow path: byte by byte, with every error of cdbmake.c.
            c = getch()
            if c == 0x0A:
                break
            if c != 0x2B:
                raise die_read("entry must start with +")
            keylen = number(0x2C, "keylen")
            datalen = number(0x3A, "datalen")
            key = src.take(keylen)
            if key is None:
                raise die_read("unexpected end if input")
            if getch() != 0x2D or getch() != 0x3E:
                raise die_read("key must be followed by ->")
            data = src.take(datalen)
            if data is None:
                raise die_read("unexpected end if input")
            add(key, data)
            if getch() != 0x0A:
                raise die_read("newline expected")
    except _ReadError as exc:
        raise die_read(oserror_text(exc.exc)) from None
    except MemoryError:
        raise die_write("out of memory") from None
    # cdb_make_finish(): 8 bytes per slot, two slots per record.
    if too_large or pos + 16 * count > _LIMIT:
        raise die_write(
            f"the hash tables of these {count} records would take the file past {_PAST_LIMIT}"
        )
