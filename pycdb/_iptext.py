"""IP addresses as text, the way the IPv6 forks of ucspi-tcp read and
write them: the one place that knows their spellings, for the compilers
(:mod:`pycdb.rules.dialects`) and the lookups (:mod:`pycdb._keyorder6`).

Two families, which must not be mixed up (docs/dialects.md):

* **ucspi-tcp6** (fehQlibs, Erwin Hoffmann) reads addresses leniently
  (``ip4_scan``, ``ip6_scan``: a prefix that parses is enough, a number
  above 255 keeps its low byte), stores an IPv6 address in the full
  39-character upper-case form (``ip6_fmt_str``), a CIDR rule as a bit
  string (``_`` or ``^`` and one byte per bit), and prints both back
  compressed (``ip6_fmt``: the *first* run of two or more zero groups
  becomes ``::``).
* **ucspi-tcp-ipv6** (Felix von Leitner's IPv6 patch, Debian's
  ``ucspi-tcp-ipv6``) never parses a rule's address; its tcpserver writes
  the client's address with its own ``ip6_fmt``: lower case, the longest
  run of zero groups compressed, even a single one
  (``2001:db8:0:1:1:1:1:1`` is ``2001:db8::1:1:1:1:1``), an IPv4-mapped
  address as ``::ffff:a.b.c.d`` (:func:`fefe_fmt`; checked against the real
  tcpserver, tests/test_dialect_oracle.py).

Every function takes bytes as C takes a string: up to the first NUL.
"""

from __future__ import annotations

__all__ = [
    "LETTERS4",
    "MAPPED",
    "bits4",
    "bits6",
    "bits_to_ip4_text",
    "bits_to_ip6_text",
    "fefe_fmt",
    "feh_fmt",
    "full_form",
    "ip4_scan",
    "ip6_scan",
    "scan_ulong",
]

_U64 = (1 << 64) - 1

#: The 12 bytes before an IPv4 address mapped into IPv6 (``::ffff:0:0/96``).
MAPPED = bytes(10) + b"\xff\xff"

#: ucspi-tcp6's letter for a set bit of an IPv4 CIDR key, by bit position.
LETTERS4 = b"abcdefghijklmnopqrstuvwxyz123456"

_HEX = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}


def _cstring(text: bytes) -> bytes:
    nul = text.find(b"\0")
    return text if nul < 0 else text[:nul]


def scan_ulong(text: bytes, pos: int = 0) -> tuple[int, int]:
    """djb's ``scan_ulong`` at ``pos``: (the number of decimal digits read,
    their value modulo 2**64, as C's unsigned long wraps)."""
    n = 0
    end = pos
    size = len(text)
    while end < size and 48 <= text[end] <= 57:
        n = (n * 10 + text[end] - 48) & _U64
        end += 1
    return end - pos, n


def _scan_hex(text: bytes, pos: int) -> tuple[int, int]:
    """fehQlibs' ``scan_xlong``: (hex digits read, the low 16 bits of their
    value: all that a group keeps)."""
    end = pos
    size = len(text)
    value = 0
    while end < size and text[end] in _HEX:
        value = ((value << 4) + _HEX[text[end]]) & 0xFFFF
        end += 1
    return end - pos, value


def ip4_scan(text: bytes) -> tuple[int, bytes]:
    """fehQlibs' ``ip4_scan``: (the length of the address read, 0 when it
    is none, and its four bytes).  Lenient as the original: each number's
    low byte is kept (``300`` is 44), text after the fourth number is
    ignored, and on failure the bytes read so far are kept (the rest
    zero), which ucspi-tcp6's tcprules uses for a CIDR rule without
    looking at the length."""
    text = _cstring(text)
    out = bytearray(4)
    pos = 0
    for k in range(4):
        if k:
            if pos >= len(text) or text[pos] != 46:  # '.'
                return 0, bytes(out)
            pos += 1
        digits, value = scan_ulong(text, pos)
        if not digits:
            return 0, bytes(out)
        out[k] = value & 0xFF
        pos += digits
    return pos, bytes(out)


def _at(text: bytes, pos: int) -> int:
    return text[pos] if pos < len(text) else 0


def ip6_scan(text: bytes) -> tuple[int, bytes]:
    """fehQlibs' ``ip6_scan``: (the length read, 0 when no address, and
    the 16 bytes).  An IPv4 address comes back IPv4-mapped; a group keeps
    the low 16 bits of however many hex digits it has; text after the
    address is ignored.  The loops follow the original step by step, its
    quirks (a single leading ``:`` is accepted, ``::`` alone is an
    address) included."""
    text = _cstring(text)
    length, four = ip4_scan(text)
    if length:
        return length, MAPPED + four
    ip = bytearray(16)
    pos = 0
    length = 0
    prefixlen = 0
    while True:  # the groups before "::"
        if _at(text, pos) == 58:  # ':'
            length += 1
            if _at(text, pos + 1) == 58:
                pos += 2
                length += 1
                break
            pos += 1
        digits, value = _scan_hex(text, pos)
        if not digits:
            return 0, bytes(ip)
        if prefixlen == 12 and _at(text, pos + digits) == 46:  # '.'
            n, four = ip4_scan(text[pos:])
            if not n:
                return 0, bytes(ip)
            ip[12:16] = four
            return n + length, bytes(ip)
        ip[prefixlen] = value >> 8
        ip[prefixlen + 1] = value & 0xFF
        prefixlen += 2
        pos += digits
        length += digits
        if prefixlen == 16:
            return length, bytes(ip)
    suffix = bytearray()
    while True:  # the groups after "::"
        if _at(text, pos) == 58:
            if not suffix:
                break
            pos += 1
            length += 1
        elif suffix:
            break
        digits, value = _scan_hex(text, pos)
        if not digits:
            length -= 1
            break
        if len(suffix) + prefixlen <= 12 and _at(text, pos + digits) == 46:
            n, four = ip4_scan(text[pos:])
            if n:
                suffix += four
                length += n
                break
            prefixlen = 12 - len(suffix)
        suffix += bytes((value >> 8, value & 0xFF))
        pos += digits
        length += digits
        if prefixlen + len(suffix) >= 16:
            break
    suffix = suffix[:16]
    ip[16 - len(suffix) :] = suffix
    return length, bytes(ip)


def full_form(ip: bytes) -> bytes:
    """ucspi-tcp6's ``ip6_fmt_str`` of 16 bytes: eight groups of four
    upper-case hex digits, ``2001:0DB8:0000:...:0001`` (39 bytes)."""
    hexed = ip.hex().upper().encode()
    return b":".join(hexed[i : i + 4] for i in range(0, 32, 4))


def _groups(ip: bytes) -> list[int]:
    return [ip[i] << 8 | ip[i + 1] for i in range(0, 16, 2)]


def _dotted(four: bytes) -> bytes:
    return b"%d.%d.%d.%d" % tuple(four)


def fefe_fmt(ip: bytes) -> bytes:
    """The IPv6 text of ucspi-tcp-ipv6's tcpserver for 16 bytes: lower-case
    hex without leading zeros, the longest run of zero groups (the first
    of equals) written ``::`` even when it is a single group, the last
    four bytes of an IPv4-mapped address as a dotted quad
    (``::ffff:192.0.2.1``).  Checked against the real tcpserver on
    generated addresses: ``2001:db8:0:1:1:1:1:1`` is
    ``2001:db8::1:1:1:1:1``, ``1:0:0:2:0:0:0:3`` is ``1:0:0:2::3``."""
    if ip[:12] == MAPPED:
        return b"::ffff:" + _dotted(ip[12:])
    groups = _groups(ip)
    best_at, best_len = -1, 0
    k = 0
    while k < 8:
        if groups[k]:
            k += 1
            continue
        end = k
        while end < 8 and not groups[end]:
            end += 1
        if end - k > best_len:
            best_at, best_len = k, end - k
        k = end
    if best_len == 0:
        return b":".join(b"%x" % g for g in groups)
    head = b":".join(b"%x" % g for g in groups[:best_at])
    tail = b":".join(b"%x" % g for g in groups[best_at + best_len :])
    return head + b"::" + tail


def feh_fmt(ip: bytes) -> bytes:
    """fehQlibs' ``ip6_fmt`` of 16 bytes, as ucspi-tcp6 prints an address:
    lower-case hex, the first run of *two or more* zero groups written
    ``::``, an IPv4-mapped address's last four bytes as a dotted quad.
    (The original reads two bytes past the address to decide whether a
    zero last group starts a run; pycdb takes them as non-zero, so a lone
    zero last group is written ``0``.)"""
    out: list[bytes] = []
    groups = _groups(ip)
    compressing = compressed = False
    for k, group in enumerate(groups):
        if k == 6 and ip[:12] == MAPPED:
            out.append(_dotted(ip[12:]))
            break
        following = 0
        if not compressing:
            following = groups[k + 1] if k < 7 else 1
        if group == 0 and following == 0 and not compressed:
            if not compressing:
                compressing = True
                if k == 0:
                    out.append(b":")
            continue
        if compressing:
            compressing = False
            compressed = True
            out.append(b":")
        out.append(b"%x" % group)
        if k < 7:
            out.append(b":")
    if compressing:
        out.append(b":")
    return b"".join(out)


def bits4(ip: bytes, prefix: int) -> bytes:
    """ucspi-tcp6's IPv4 bit string of the first ``prefix`` bits of the 4
    bytes ``ip`` (without its ``_``): ``0`` for a clear bit, and for a set
    bit the letter of its position in :data:`LETTERS4`."""
    out = bytearray(prefix)
    for k in range(prefix):
        bit = ip[k >> 3] >> (7 - (k & 7)) & 1
        out[k] = LETTERS4[k] if bit else 48
    return bytes(out)


def bits6(ip: bytes, prefix: int) -> bytes:
    """ucspi-tcp6's IPv6 bit string of the first ``prefix`` bits of the 16
    bytes ``ip`` (without its ``^``): ``0`` for a clear bit, and for the
    n-th set bit (from 0) the byte 96 + n, so a key holds bytes up to 223."""
    out = bytearray(prefix)
    ones = 0
    for k in range(prefix):
        if ip[k >> 3] >> (7 - (k & 7)) & 1:
            out[k] = 96 + ones
            ones += 1
        else:
            out[k] = 48
    return bytes(out)


def bits_to_ip4_text(key: bytes) -> bytes | None:
    """How ucspi-tcp6's tcprulescheck prints a key that starts with ``_``
    (``bitstring_ip4``): each complete octet and the partial last one
    followed by ``.`` (none after the fourth), then ``/`` and the number
    of bits: ``_0000e0g0`` is ``10./8``, and a /12 key ``172.16./12``.
    None when it prints the key as it is (fewer than 2 or more than 32
    bits).  Any byte but ``0`` counts as a set bit."""
    prefix = len(key) - 1
    if prefix <= 1 or prefix > 32:
        return None
    out = []
    number = 0
    weight = 128
    for j in range(1, prefix + 1):
        if key[j] != 48:
            number += weight
        weight >>= 1
        if j % 8 == 0 or j == prefix:
            out.append(b"%d" % number + (b"." if j < 32 else b""))
            number = 0
            weight = 128
    return b"".join(out) + b"/%d" % prefix


def bits_to_ip6_text(key: bytes) -> bytes | None:
    """How ucspi-tcp6's tcprulescheck prints a key that starts with ``^``
    (``bitstring_ip6``): the bits as an address, zero-filled, in
    :func:`feh_fmt`, then ``/`` and the number of bits
    (``2001:db8::/32``).  None when it prints the key as it is (fewer than
    2 or more than 128 bits).  Any byte but ``0`` counts as a set bit."""
    prefix = len(key) - 1
    if prefix <= 1 or prefix > 128:
        return None
    ip = bytearray(16)
    for k in range(prefix):
        if key[k + 1] != 48:
            ip[k >> 3] |= 1 << (7 - (k & 7))
    return feh_fmt(bytes(ip)) + b"/%d" % prefix
