"""``pycdb make RULES.cdb RULES.tmp < RULES``: ucspi-tcp's ``tcprules``.

A drop-in: for every input tcprules accepts, the same bytes in RULES.cdb
(mode 0644 under the usual umask) and exit 0; for every input it refuses,
exit 100; 111 for a system error; 100 for bad usage.  Where it differs,
it differs on purpose:

* the error names the file, the line number and the reason
  (``pycdb: fatal: /etc/tcp.smtp:12: unable to parse this line: ...``);
  the file is the real path of standard input when that is a regular
  file (``/proc/self/fd/0`` resolved), ``-`` otherwise;
* the database is built in an unnamed file (Linux ``O_TMPFILE``) that
  takes the name RULES.tmp only once complete, just before the rename:
  on any error, and if the process is killed, nothing is left behind
  (tcprules leaves RULES.tmp), and RULES.cdb is never touched;
* RULES.tmp is never opened: a leftover there is replaced, and a
  symbolic link there is replaced, never followed (tcprules overwrites
  the link's target);
* before anything is written it refuses, exit 100, a RULES.tmp that
  holds text rather than a leftover cdb, or is the rules file being read
  (tcprules would empty the rules before reading them and install an
  empty, allow-all database: ``cat rules | tcprules rules.cdb rules``),
  a RULES.tmp that is RULES.cdb itself (the database would be rewritten
  in place instead of replaced atomically), and a RULES.cdb that is the
  rules file (the rules text would be replaced by the database); and,
  exit 111, a RULES.tmp on another file system than RULES.cdb or a
  RULES.cdb that is a directory (the final rename would fail after all
  the work);
* ``pycdb make --help`` explains itself; extra operands, which tcprules
  ignores (``pycdb make OUT TMP rules.smtp`` would wait for standard
  input and publish what it gives), are refused, exit 100.

``--dialect ucspi-tcp-ipv6`` and ``--dialect ucspi-tcp6`` make it a
drop-in for the IPv6 forks' tcprules instead (docs/dialects.md): their
keys byte for byte, and their exit codes (ucspi-tcp6's tcprules exits
101 for a line it refuses, and so does ``pycdb make --dialect
ucspi-tcp6``, so that a script written for it reads the same code).
Where ucspi-tcp-ipv6's tcprules loops for ever (a line without
``:allow`` or ``:deny``), it refuses the line, exit 100, and publishes
nothing.  ``--expand-cidr`` (0.88's rules only) rewrites each
``A.B.C.D/N`` address into the prefix or range that matches the same
clients (:mod:`pycdb.rules.cidr`) and says on standard error how many
keys each took.
"""

from __future__ import annotations

import gc
import os
import stat
from collections.abc import Iterator

from .._files import looks_like_text
from ..errors import RulesSyntaxError, TooLargeError
from ..rules.cidr import Expanded, expand_cidr
from ..rules.compiler import Skipped, compile_into
from ..rules.dialects import CLASSIC, FEH, get
from ..writer import Writer
from . import _dialect
from ._util import Fatal, oserror_text, split_options, usage, write_err, write_out

USAGE = "pycdb make RULES.cdb RULES.tmp < RULES"
#: With the options, which tcprules has not.
FULL_USAGE = f"pycdb make [--expand-cidr] {_dialect.OPTION} RULES.cdb RULES.tmp < RULES"

HELP = f"""usage: {USAGE}
       {FULL_USAGE}

Compile tcprules text read on standard input into the cdb RULES.cdb, as
ucspi-tcp's `tcprules RULES.cdb RULES.tmp` does, byte for byte: the
records go to RULES.tmp, which is then renamed over RULES.cdb, so
tcpserver always sees a complete database.

Differences from tcprules, all on error paths: messages give the file,
line and reason; nothing is left behind on failure, or when killed (the
file takes the name RULES.tmp only when complete); a link at RULES.tmp is
replaced, never followed; and it refuses to start when RULES.tmp holds
text or is the rules file or RULES.cdb, when RULES.cdb is the rules file,
when RULES.tmp and RULES.cdb are on different file systems, or when
given more than two operands (the rules are read from standard input).

{_dialect.HELP}
                 (ucspi-tcp6's tcprules exits 101 for a refused line, and
                 so does this with --dialect ucspi-tcp6)
  --expand-cidr  (0.88) write each A.B.C.D/N address as the prefix or range
                 that matches the same clients, and say how many keys it took

Exit codes: 0 done, 100 bad usage or a line tcprules refuses (101 with
--dialect ucspi-tcp6), 111 a system error.
"""

CHUNK = 1 << 16


def _stdin_name(st: os.stat_result | None) -> str:
    """The real path of standard input when it is a regular file that
    still has that name, for messages; ``-`` otherwise."""
    if st is None or not stat.S_ISREG(st.st_mode):
        return "-"
    try:
        path = os.path.realpath("/proc/self/fd/0")
        named = os.stat(path)
    except OSError:
        return "-"
    if (named.st_dev, named.st_ino) != (st.st_dev, st.st_ino):
        return "-"  # deleted, renamed, or no /proc
    return path


def _stat(path: str, follow: bool = True) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=follow)
    except OSError:
        return None


def _entry(path: str) -> str:
    """The directory entry ``path`` names: its directory resolved, its
    last component not (a link there is the entry, not its target)."""
    head, tail = os.path.split(path)
    return os.path.join(os.path.realpath(head or "."), tail)


def _same(a: os.stat_result | None, b: os.stat_result | None) -> bool:
    return a is not None and b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _preflight(target: str, tmp: str, source: os.stat_result | None, name: str) -> None:
    """The mistakes tcprules lets through, refused before anything is
    created.  ``source`` is standard input's status."""
    if source is not None and not stat.S_ISREG(source.st_mode):
        source = None  # a pipe or terminal: nothing on disk to protect
    tmp_st = _stat(tmp, follow=False)  # a link at tmp is replaced, never followed
    if _same(tmp_st, source):
        raise Fatal(
            100,
            f"refusing to use {tmp} as the temporary file: it is the rules file being read "
            f"({name}); tcprules would empty the rules before reading them and install "
            f"an empty, allow-all database.  Did you swap the arguments?  usage: {USAGE}",
        )
    target_lst = _stat(target, follow=False)  # rename() replaces a link, not its target
    if _same(target_lst, source):
        raise Fatal(
            100,
            f"refusing to replace {target}: it is the rules file being read ({name}); the "
            f"rules text would be replaced by the database.  usage: {USAGE}",
        )
    if _same(tmp_st, target_lst) or (tmp and target and _entry(tmp) == _entry(target)):
        raise Fatal(
            100,
            f"refusing to use {target} as its own temporary file: the database would be "
            "rewritten in place, and tcpserver could read it half-written; name a separate "
            f"temporary file in the same directory, such as {target}.tmp",
        )
    if looks_like_text(tmp):
        raise Fatal(
            100,
            f"refusing to replace {tmp}: it holds text, not a leftover database (is it the "
            "rules file?  tcprules would replace it with the database).  The rules are read "
            f"from standard input: {USAGE}",
        )
    if target_lst is not None and stat.S_ISDIR(target_lst.st_mode):
        raise Fatal(111, f"unable to replace {target}: it is a directory")
    target_dir = os.path.dirname(target) or "."
    try:
        target_dev = os.stat(target_dir).st_dev
    except OSError as exc:
        raise Fatal(
            111, f"unable to create {target}: directory {target_dir}: {oserror_text(exc)}"
        ) from None
    tmp_dir = os.path.dirname(tmp) or "."
    tmp_dir_st = _stat(tmp_dir)
    if tmp_dir_st is not None and tmp_dir_st.st_dev != target_dev:
        raise Fatal(
            111,
            f"{tmp} and {target} are on different file systems, so the finished database "
            "could not be renamed over the old one; put the temporary file in the same "
            f"directory, such as {target}.tmp",
        )


BOM = b"\xef\xbb\xbf"


def _read_stdin(name: str) -> Iterator[bytes]:
    first = True
    while True:
        try:
            chunk = os.read(0, CHUNK)  # EINTR is retried by Python itself
        except OSError as exc:
            raise Fatal(111, f"unable to read input: {oserror_text(exc)}") from None
        if not chunk:
            return
        if first and chunk.startswith(BOM):
            write_err(
                f"pycdb: warning: {name}:1: the text starts with a UTF-8 byte order mark "
                "(bytes EF BB BF), which tcprules reads as the first bytes of line 1: a "
                "comment there is no comment, an address there never matches; save the "
                "file without it\n"
            )
        first = False
        yield chunk


def _warn_skipped(name: str, skipped: Skipped, dialect: str) -> None:
    # ucspi-tcp6's tcprules skips only lines with neither ':' nor ',' (its
    # address may also end at a ',': ADDRESS,allow).
    if dialect == FEH:
        missing, rule = "neither ':' nor ','", "ADDRESS:allow or ADDRESS,allow"
    else:
        missing, rule = "no ':'", "ADDRESS:allow or ADDRESS:deny"
    for lineno in skipped.first:
        write_err(
            f"pycdb: warning: {name}:{lineno}: {missing} on this line, so tcprules skips "
            f"it without a word (a rule is {rule})\n"
        )
    more = skipped.count - len(skipped.first)
    if more > 0:
        without = "without ':'" if dialect != FEH else "with neither ':' nor ','"
        write_err(f"pycdb: warning: {name}: {more} more lines {without} skipped\n")


def _report_expanded(name: str, expanded: list[Expanded]) -> None:
    for e in expanded:
        keys = "1 key" if e.keys == 1 else f"{e.keys} keys"
        write_err(
            f"pycdb: note: {name}:{e.lineno}: expanded {e.network.decode()} to "
            f"{e.address.decode()} ({keys})\n"
        )
    if expanded:
        total = sum(e.keys for e in expanded)
        networks = "1 network" if len(expanded) == 1 else f"{len(expanded)} networks"
        write_err(f"pycdb: note: {name}: --expand-cidr wrote {networks} as {total} keys\n")


def main(command: str, args: list[str]) -> int:
    if len(args) == 1 and args[0] in ("-h", "--help"):
        write_out(HELP)
        return 0
    parsed = split_options(
        args, FULL_USAGE, flags=("expand-cidr",), valued={"dialect": "a dialect"}
    )
    if parsed is None:
        write_out(HELP)
        return 0
    options, args = parsed
    lang = get(_dialect.name_of(options.get("dialect"), FULL_USAGE))
    expand = "expand-cidr" in options
    if expand and lang.name != CLASSIC:
        raise usage(
            f"{FULL_USAGE} (--expand-cidr rewrites ucspi-tcp 0.88's rules, not {lang.name}'s; "
            "'pycdb convert' rewrites rules between dialects)"
        )
    if len(args) < 2:
        raise usage(USAGE)
    if len(args) > 2:
        raise Fatal(
            100,
            f"extra operand {args[2]!r}: the rules are read from standard input, not named "
            f"(did you mean '< {args[2]}'?); usage: {USAGE}",
        )
    target, tmp = args[0], args[1]

    # A short-lived process that makes no reference cycles: the cyclic
    # collector would only cost time (a few percent on the pure backend).
    gc.disable()
    try:
        source: os.stat_result | None = os.fstat(0)
    except OSError:
        source = None  # closed: the first read says so
    name = _stdin_name(source)
    _preflight(target, tmp, source, name)

    try:
        writer = Writer(target, tmp_path=tmp)
    except OSError as exc:
        raise Fatal(111, f"unable to create {tmp}: {oserror_text(exc)}") from None
    skipped = Skipped()
    expanded: list[Expanded] = []
    chunks = _read_stdin(name)
    if expand:
        chunks = expand_cidr(chunks, name, expanded)
    try:
        compile_into(writer, chunks, name, skipped, dialect=lang.name)
    except RulesSyntaxError as exc:
        writer.abort()
        raise Fatal(lang.syntax_exit, str(exc)) from None
    except TooLargeError as exc:
        writer.abort()
        raise Fatal(111, f"unable to write to {tmp}: {exc}") from None
    except MemoryError:
        writer.abort()
        raise Fatal(111, "out of memory") from None
    except OSError as exc:
        writer.abort()
        raise Fatal(111, f"unable to write to {tmp}: {oserror_text(exc)}") from None
    except BaseException:
        writer.abort()
        raise
    try:
        writer.commit()
    except OSError as exc:
        raise Fatal(
            111, f"unable to finish {tmp} and move it to {target}: {oserror_text(exc)}"
        ) from None
    except MemoryError:
        raise Fatal(111, "out of memory") from None
    _warn_skipped(name, skipped, lang.name)
    _report_expanded(name, expanded)
    return 0
