"""tcpserver's rules check, from Python: :class:`RuleSet` and :class:`Decision`.

``RuleSet(path).check(ip, host, info)`` answers what ``tcpserver -x path``
would do with a connection: the same keys in the same order (ucspi-tcp's
``rules()``), the first record of the first key that exists, and that
record's data read the way tcpserver's ``found()`` reads it.

Text.  tcpserver works on bytes.  ``ip``, ``host`` and ``info`` may be
``bytes`` (used as they are) or ``str`` (encoded as UTF-8 with
``surrogateescape``, the way Python itself maps environment variables and
file names to bytes on POSIX).  ``Decision.rule`` and ``Decision.env`` are
decoded the same way, so every byte of the file survives the round trip:
``rule.encode("utf-8", "surrogateescape")`` is the key, byte for byte.
``Decision.data`` and ``Decision.key`` stay bytes.  A NUL inside an
argument is a ValueError: tcpserver gets these values as C strings, so no
connection can carry one.

Reloading.  The database is held as one immutable snapshot (a private
copy of the file, the backend's lookup over it, and the identity of the
file it came from).  A check takes a reference to the current snapshot
and uses only that, so it sees the old file or the new one, never a mix;
every ``reload_interval`` seconds at most, a check first re-examines the
path and, if the file there is a different one, swaps in a new snapshot.
Replacing the snapshot is one attribute store, so no check ever waits on
a lock; the old copy goes when the last check using it returns.

A file rewritten in place.  Writers should replace the file by rename
(as ``tcprules``, ``pycdb make`` and :class:`pycdb.Writer` do), but
``cp new.cdb /etc/tcp.smtp.cdb`` truncates the live file and writes into
it.  A RuleSet never crashes on that and never answers from torn bytes:
it reads a database of up to :data:`COPY_LIMIT` bytes into a private
copy (so nothing can change under a check), and takes a new version only
when it is complete and sound: read in one piece while its size and
times stayed the same, its header and every record inside the file.
Until then checks keep answering from the last good database; a file
that stays incomplete or unsound for :data:`SETTLE` seconds is reported
instead, :class:`pycdb.CorruptError` on every check, as is one that is
unsound when the RuleSet is made.  (A database larger than
:data:`COPY_LIMIT` is mapped, and an in-place rewrite of it is outside
the cdb contract, as for :class:`pycdb.Reader`.)
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any, Callable, NamedTuple

from .. import _backend
from .._files import snapshot
from .._format import Layout, parse_header, records
from .._keyorder import IPV6_WALK
from ..errors import CorruptError, DialectError, Error
from . import dialects
from ._names import CLASSIC, FEFE

__all__ = ["COPY_LIMIT", "SETTLE", "Decision", "RuleSet"]

#: Databases up to this many bytes are read into a private copy, which an
#: in-place rewrite cannot tear; larger ones are mapped.
COPY_LIMIT = 256 << 20
#: Seconds a new version may stay incomplete or unsound (being copied in
#: place) before checks report it instead of answering from the last good
#: one.
SETTLE = 5.0

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"
_monotonic = time.monotonic

#: ``find(ip, host, info) -> (key, data) | None``: a backend's rules walk.
_Find = Callable[[bytes, Any, Any], Any]
#: What identifies the file behind the path: a rename changes the inode,
#: and size and times catch the rest (a file copied over in place).
_Ident = tuple[int, int, int, int, int]
_UNKNOWN: _Ident = (-1, -1, -1, -1, -1)


class Decision(NamedTuple):
    """tcpserver's decision for one connection: the named pair ``(key,
    data)``, immutable.

    ``key`` is the deciding key as bytes (None when no key matched: the
    default, which allows with no environment; ``rule`` is the same as
    text); ``data`` is its first record's data (``b""`` for the default).

    ``allowed`` and ``env`` read ``data`` as tcpserver's ``found()``
    does: items end at a NUL (bytes after the last NUL are ignored); an
    item starting with ``D`` denies, wherever it stands; an item
    ``+NAME=VALUE`` (split at the first ``=``) sets NAME, a later one for
    the same NAME replacing the earlier, and ``env`` lists the names in
    the order their winning items came; every other item, ``+NAME``
    without ``=`` included, is ignored.  ``env`` also holds what a
    denying record sets, as tcpserver sets it before it drops the
    connection.  Both are worked out on each access (``env`` is a new
    dict every time).
    """

    key: bytes | None
    data: bytes

    @property
    def rule(self) -> str | None:
        """The deciding key (UTF-8, surrogateescape), or None."""
        key = self.key
        return None if key is None else key.decode(_ENCODING, _ERRORS)

    @property
    def allowed(self) -> bool:
        """False when an item of the data starts with ``D``."""
        data = self.data
        if data[:1] == b"D":
            start = 0
        else:
            start = data.find(b"\0D") + 1
            if not start:
                return True
        # That item counts only if a NUL ends it; if this one is not
        # ended, no later item exists at all.
        return data.find(b"\0", start + 1) < 0

    @property
    def env(self) -> dict[str, str]:
        """The environment variables the record sets, as tcpserver would."""
        env: dict[str, str] = {}
        items = self.data.split(b"\0")
        items.pop()  # not ended by a NUL: not an item
        for item in items:
            if item[:1] == b"+":
                name, eq, value = item[1:].partition(b"=")
                if eq:
                    text = name.decode(_ENCODING, _ERRORS)
                    env.pop(text, None)
                    env[text] = value.decode(_ENCODING, _ERRORS)
        return env

    def __repr__(self) -> str:
        return f"Decision(rule={self.rule!r}, allowed={self.allowed!r}, env={self.env!r})"


#: No key matched.
DEFAULT = Decision(None, b"")
_new = tuple.__new__


def _walk(handle: Any, lang: dialects.Dialect, longest: int, cidr: set[int] | None) -> _Find:
    """The dialect's rules walk in Python over the backend's lookups, for
    an address in any text (:meth:`pycdb.rules.dialects.Dialect.lookup_keys`),
    trying only the CIDR keys whose lengths the database has (``cidr``)."""
    get = handle.get
    keys = lang.lookup_keys

    def find(ip: bytes, host: Any, info: Any) -> Any:
        for key in keys(ip, host, info, longest, cidr):
            value = get(key, None)
            if value is not None:
                return key, value
        return None

    return find


def _ipv4_only(walk: _Find) -> _Find:
    """``walk`` refusing an address with ``:``, as the backends' own walk
    does (:class:`pycdb.errors.DialectError`): the check then forms
    tcpserver's text for it first."""

    def find(ip: bytes, host: Any, info: Any) -> Any:
        if 58 in ip:
            raise DialectError(IPV6_WALK)
        return walk(ip, host, info)

    return find


def _cidr_lengths(buf: Any, eod: int, name: str) -> set[int]:
    """The lengths of the keys that start with ``_`` or ``^`` (ucspi-tcp6's
    CIDR keys, and any other key so shaped)."""
    found = set()
    for pos, klen, _ in records(buf, eod, name):
        if klen and buf[pos + 8] in (94, 95):  # '^', '_'
            found.add(klen)
    return found


def _arg(value: object, what: str) -> bytes:
    if isinstance(value, str):
        raw = value.encode(_ENCODING, _ERRORS)
    elif isinstance(value, bytes):
        raw = value
    elif isinstance(value, (bytearray, memoryview)):
        raw = bytes(value)
    else:
        raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")
    if 0 in raw:
        raise ValueError(f"{what} contains a NUL byte, which no connection can carry")
    return raw


class _Snapshot:
    """One version of the database, never changed once made: the
    backend's rules walk over the file (its handle keeps the bytes
    alive), the identity of the file, whether it is a good version (not
    one that raises), and, while a newer version at the path is
    incomplete or unsound, when that was first seen (the snapshot then
    stands in for it until :data:`SETTLE` has passed)."""

    __slots__ = ("find", "text", "ident", "good", "unsettled_since")

    def __init__(
        self,
        find: _Find,
        ident: _Ident | None,
        good: bool = True,
        unsettled_since: float | None = None,
        text: _Find | None = None,
    ) -> None:
        #: The walk for an address without ':' (one C call for ucspi-tcp
        #: 0.88 on the cffi backend); DialectError for one with ':'.
        self.find = find
        #: The walk for an address in any text (the dialect's, in Python).
        self.text = find if text is None else text
        self.ident = ident
        self.good = good
        self.unsettled_since = unsettled_since


def _no_rules(ip: bytes, host: object, info: object) -> None:
    return None


def _failing(exc: Exception) -> _Find:
    """A find that raises (a fresh copy of) ``exc`` on every check: the
    file at the path cannot be used, and each check should say so, as each
    of tcpserver's connections would."""

    def find(ip: bytes, host: object, info: object) -> None:
        again = copy.copy(exc)
        raise again from exc.__cause__

    return find


def _closed(ip: bytes, host: object, info: object) -> None:
    raise ValueError("check on a closed RuleSet")


def _ident(st: os.stat_result) -> _Ident:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class RuleSet:
    """A rules cdb, checked the way tcpserver checks it.

    ``reload_interval`` is how often, at most, the path is re-examined
    for a new file (seconds; 0 re-examines on every check, like tcpserver,
    which opens the file for each connection).  A missing file raises
    ``FileNotFoundError``, at construction and on the checks after it
    disappears; with ``allow_missing=True`` it allows every connection
    instead (``tcpserver -X``), and a file that appears later is used.
    A file that cannot be read raises OSError naming it, and a corrupt
    one :class:`pycdb.CorruptError`, at construction and on every check
    while it stays in place.

    ``dialect`` names the tcpserver whose rules check this is
    (:mod:`pycdb.rules.dialects`): ``"ucspi-tcp"`` (0.88, the default),
    ``"ucspi-tcp-ipv6"`` (Debian's ucspi-tcp-ipv6; ``mapped_as_ipv6`` is
    its ``tcpserver -6``) or ``"ucspi-tcp6"`` (fehQlibs' ucspi-tcp6).  A
    database built by a fork's tcprules must be checked in its dialect:
    :func:`pycdb.rules.dialects.recognise` tells, from its keys, when only
    one fork can have written it.  The dialect is fixed at construction,
    so choosing it costs nothing per check; ucspi-tcp 0.88's check is one
    call into the backend (one C call on the cffi backend).

    The backend (``pycdb.BACKEND``) is the one active at construction,
    and is kept across reloads.  Checks from any number of threads may
    run at once.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | bytes,
        reload_interval: float = 1.0,
        *,
        allow_missing: bool = False,
        dialect: str | None = None,
        mapped_as_ipv6: bool = False,
    ) -> None:
        interval = float(reload_interval)
        if not interval >= 0:  # also refuses NaN
            raise ValueError(f"reload_interval must be >= 0, not {reload_interval!r}")
        lang = dialects.get(dialect)
        if mapped_as_ipv6 and lang.name != FEFE:
            raise ValueError(
                "mapped_as_ipv6 is tcpserver -6 of ucspi-tcp-ipv6 (dialect='ucspi-tcp-ipv6'), "
                f"not of {lang.name}"
            )
        self.path = path
        self.name = os.fsdecode(path)
        self.reload_interval = interval
        self.allow_missing = allow_missing
        #: The dialect's name (:data:`pycdb.rules.dialects.NAMES`).
        self.dialect: str = lang.name
        self.mapped_as_ipv6 = mapped_as_ipv6
        self._lang = lang
        self._impl = _backend.current()
        self.backend: str = self._impl.NAME
        self._snap = self._load()  # raises: a bad file is reported at once
        self._due = _monotonic() + interval

    def _load(self) -> _Snapshot:
        """A snapshot of the file now at the path; raises when it is
        missing (and not allowed to be), unreadable, incomplete or
        corrupt."""
        try:
            buf, st = snapshot(self.path, copy_limit=COPY_LIMIT)
        except FileNotFoundError:
            if self.allow_missing:
                return _Snapshot(_no_rules, None)
            raise
        header, eod = parse_header(buf, self.name)
        impl = self._impl
        # Every record inside the record area (CorruptError naming the
        # first that is not), and the longest key: checks never build a
        # longer one.
        _, longest = impl.Handle(Layout(buf, header, eod, self.name)).survey()
        handle = impl.Handle(Layout(buf, header, eod, self.name, longest))
        lang = self._lang
        if lang.name in (CLASSIC, FEFE):
            # ucspi-tcp-ipv6 reads an IPv4 address as 0.88 does.
            walk = _walk(handle, lang, longest, None)
            return _Snapshot(handle.rules_find, _ident(st), text=walk)
        walk = _walk(handle, lang, longest, _cidr_lengths(buf, eod, self.name))
        return _Snapshot(_ipv4_only(walk), _ident(st), text=walk)

    def _refresh(self) -> None:
        """Re-examine the path; swap in a new snapshot if the file there
        changed.  Threads may race here harmlessly: each one that sees a
        change stores a complete snapshot of a file that was there."""
        now = _monotonic()
        self._due = now + self.reload_interval
        current = self._snap
        if current.find is _closed:
            return
        try:
            ident: _Ident | None = _ident(os.stat(self.path))
        except FileNotFoundError:
            ident = None
        except OSError as exc:
            # Matches no file, so the next examination tries again.
            self._snap = _Snapshot(_failing(exc), _UNKNOWN, good=False)
            return
        if ident == current.ident:
            return
        try:
            self._snap = self._load()
        except CorruptError as exc:
            # Being written in place, or damaged: the last good version
            # answers until SETTLE has passed (never a failing one).
            since = current.unsettled_since if current.unsettled_since is not None else now
            if current.good and now - since < SETTLE:
                self._snap = _Snapshot(current.find, current.ident, True, since, current.text)
                self._due = now + min(self.reload_interval, 0.1)
            else:
                self._snap = _Snapshot(_failing(exc), ident, good=False)
        except (Error, OSError) as exc:
            self._snap = _Snapshot(_failing(exc), ident, good=False)

    def reload(self) -> None:
        """Re-examine the path now, whatever ``reload_interval`` says."""
        self._refresh()

    def check(
        self,
        ip: str | bytes | dialects.Address,
        host: str | bytes | None = None,
        info: str | bytes | None = None,
    ) -> Decision:
        """tcpserver's decision for a connection from ``ip``, ``host`` (its
        name, ``TCPREMOTEHOST``, or None when unknown) and ``info`` (the
        ident answer, ``TCPREMOTEINFO``, or None).  An empty string is a
        value given, as with tcpserver.  ``host`` and ``info`` are ``str``
        or ``bytes`` (see the module docstring); a NUL in one is a
        ValueError.

        ``ip`` is the client's address in any spelling (``"2001:DB8::5"``,
        ``"::ffff:192.0.2.1"``, an :mod:`ipaddress` object) or a socket
        address tuple as ``accept()`` and ``getpeername()`` give it
        (``(host, port)`` or ``(host, port, flowinfo, scope_id)``); the
        keys are formed from the text the dialect's tcpserver would put in
        ``TCPREMOTEIP`` (:meth:`pycdb.rules.dialects.Dialect.client_text`):
        an IPv4-mapped address is the IPv4 client wherever that tcpserver
        shows it so, and an IPv6 address given to ucspi-tcp 0.88's check,
        whose tcpserver has no IPv6, is a :class:`pycdb.errors.DialectError`
        saying which dialect to use.  Text that is no address (``"1..2"``)
        is used as it is, as tcprulescheck uses ``TCPREMOTEIP``.

        Raises :class:`pycdb.CorruptError` for a corrupt file and OSError
        for a missing or unreadable one (see the class docstring)."""
        if _monotonic() >= self._due:
            self._refresh()
        snap = self._snap
        # str is the common case: taken without a call (an exact class
        # test costs less than isinstance; a subclass takes the long way).
        if type(ip) is str and "\0" not in ip:
            ip_b = ip.encode(_ENCODING, _ERRORS)
        else:
            ip_b = self._client(ip)
        if host is None:
            host_b = None
        elif type(host) is str and "\0" not in host:
            host_b = host.encode(_ENCODING, _ERRORS)
        else:
            host_b = _arg(host, "host")
        if info is None:
            info_b = None
        elif type(info) is str and "\0" not in info:
            info_b = info.encode(_ENCODING, _ERRORS)
        else:
            info_b = _arg(info, "info")
        try:
            found = snap.find(ip_b, host_b, info_b)
        except DialectError:  # the text holds ':': found by the walk, at no cost to IPv4
            found = self._ipv6(snap, ip_b, host_b, info_b)
        if found is None:
            return DEFAULT
        # tuple.__new__ straight: Decision's own __new__ is Python code.
        return _new(Decision, found)

    def _client(self, ip: object) -> bytes:
        """The text :meth:`check` starts from for an ``ip`` that is not a
        plain str: bytes as they are, an address object or a socket
        address as the dialect's tcpserver writes it."""
        if isinstance(ip, (str, bytes, bytearray, memoryview)):
            return _arg(ip, "ip")
        if isinstance(ip, tuple) or hasattr(ip, "packed"):
            address = dialects.client_address(ip)  # type: ignore[arg-type]
            if address is None:
                raise ValueError(f"ip {ip!r} is no IP address")
            return self._lang.client_text(address, self.mapped_as_ipv6)
        raise TypeError(f"ip must be str, bytes or an address, not {type(ip).__name__}")

    def _ipv6(self, snap: _Snapshot, ip: bytes, host: bytes | None, info: bytes | None) -> Any:
        """The walk for an address text holding ``:``: the text the
        dialect's tcpserver would write for it (an IPv4-mapped address as
        the IPv4 client where it shows it so; 0.88's DialectError for any
        other IPv6 address), or, when it is no address at all, the text
        as it is, as tcprulescheck takes it."""
        address = dialects.client_address(ip)
        if address is None:
            return snap.text(ip, host, info)
        text = self._lang.client_text(address, self.mapped_as_ipv6)
        return snap.text(text, host, info) if 58 in text else snap.find(text, host, info)

    def check_text(
        self, ip: str | bytes, host: str | bytes | None = None, info: str | bytes | None = None
    ) -> Decision:
        """tcprulescheck's decision: like :meth:`check`, but ``ip`` is
        ``TCPREMOTEIP`` as text and is used as given, in whatever spelling,
        as the dialect's tcprulescheck uses it (ucspi-tcp 0.88's and
        ucspi-tcp-ipv6's compare it byte for byte; ucspi-tcp6's reads an
        IPv6 address into its full form itself).  ``pycdb check`` answers
        with this."""
        if _monotonic() >= self._due:
            self._refresh()
        snap = self._snap
        ip_b = _arg(ip, "ip")
        host_b = None if host is None else _arg(host, "host")
        info_b = None if info is None else _arg(info, "info")
        try:
            found = snap.find(ip_b, host_b, info_b)
        except DialectError:
            found = snap.text(ip_b, host_b, info_b)
        return DEFAULT if found is None else _new(Decision, found)

    def close(self) -> None:
        """Stop using the file (the mapping goes once running checks end)."""
        self._snap = _Snapshot(_closed, None, good=False)
        self._due = float("inf")

    def __enter__(self) -> RuleSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pycdb.RuleSet {self.name!r} ({self.dialect}, {self.backend})>"
