"""A mail relay in Python with qmail's access control: tcpserver's rules
database, forward-confirmed host names, rblsmtpd and qmail-smtpd's
rcpthosts/RELAYCLIENT, on aiosmtpd (pycdb.integrations.aiosmtpd).

    python examples/relay.py --rules RULES.cdb --rcpthosts FILE \\
        [--morercpthosts CDB] --listen HOST:PORT [--paranoid | --no-paranoid] \\
        [--dns-server IP] [--defer-on-dns-failure] --maildir DIR

Every accepted message is stored in the Maildir DIR, once per recipient,
with the two lines qmail-local puts in front of a Maildir delivery:
``Return-Path: <SENDER>`` (the sender quoted as qmail's quote2 quotes
it) and ``Delivered-To: RECIPIENT``, then the message with LF line
endings, as qmail-smtpd queues it.  It relays nothing onwards: the
Maildir is where a real relay's queue would be.

The rules database is read again for every connection (tcpserver opens
it per connection), so ``pycdb make RULES.cdb RULES.tmp < RULES`` takes
effect from the next client on.  Host names are looked up as
``tcpserver -p`` (``--paranoid``, the default) or ``-P`` would, asking
``--dns-server`` or the servers in $DNSCACHEIP; with
``--defer-on-dns-failure``, a client whose lookup failed for now gets
451 (try later) instead of qmail's 553 for a recipient outside
rcpthosts, so a host relaying by name does not see its mail bounced
while DNS fails.  ``--morercpthosts`` names qmail's
``control/morercpthosts.cdb`` (qmail-newmrh's), consulted after
rcpthosts and read again once replaced.  It prints
``relay.py: listening on HOST:PORT`` once it accepts connections
(``--listen 127.0.0.1:0`` picks a free port) and stops on SIGTERM or
SIGINT.  Exit 100 for bad usage; 111, with one ``relay.py: fatal:``
line, when a file cannot be read (the rules database, rcpthosts,
morercpthosts, the Maildir), the address cannot be had, or aiosmtpd is not installed.  A
message that cannot be stored is answered 451 (the client tries again),
as qmail-smtpd answers when its queue fails.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import logging
import mailbox
import os
import signal
import socket
import sys
from typing import Callable, NoReturn, TypeVar

import pycdb
from pycdb.remotehost import RemoteHostResolver
from pycdb.rules import RuleSet

try:
    from aiosmtpd.smtp import SMTP, Envelope

    from pycdb.integrations.aiosmtpd import RelayPolicy, TcpRulesSession, read_rcpthosts
except ModuleNotFoundError as exc:
    if (exc.name or "").partition(".")[0] != "aiosmtpd":
        raise
    sys.stderr.write(
        "relay.py: fatal: aiosmtpd is not installed: pip install 'pycdb-toolkit[aiosmtpd]' "
        "(in a clone of pycdb: pip install '.[aiosmtpd]')\n"
    )
    sys.exit(111)

#: qmail-smtpd's answer when the message could not be queued (qmail-queue's
#: exit 53): the client keeps the message and tries again later.
QUEUE_FAILED = "451 qq write error or disk full (#4.3.0)"

log = logging.getLogger("relay.py")

T = TypeVar("T")

# qmail's quote.c: the bytes a local part may hold unquoted.
_UNQUOTED = frozenset(c for c in range(33, 127) if chr(c) not in ' "(),:;<>@[\\]')


def quote2(address: str) -> str:
    """qmail's ``quote2``: the local part (before the last ``@``) in
    double quotes, with ``\\`` before CR, LF, ``"`` and ``\\``, when it is
    empty, holds a byte qmail does not allow unquoted, or starts, ends or
    doubles a dot; the empty address stays empty."""
    if not address:
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    raw = local.encode("utf-8", "surrogateescape")
    plain = (
        raw
        and all(b in _UNQUOTED for b in raw)
        and not raw.startswith(b".")
        and not raw.endswith(b".")
        and b".." not in raw
    )
    if not plain:
        escaped = "".join("\\" + c if c in '\r\n"\\' else c for c in local)
        local = f'"{escaped}"'
    return local + at + domain


def qmail_local_lines(sender: str, recipient: str) -> bytes:
    """The Return-Path: and Delivered-To: lines qmail-local writes first
    in a Maildir delivery (newlines in them as ``_``)."""
    rpline = f"Return-Path: <{quote2(sender)}>".replace("\n", "_") + "\n"
    dtline = f"Delivered-To: {recipient}".replace("\n", "_") + "\n"
    return (rpline + dtline).encode("utf-8", "surrogateescape")


class MaildirDelivery:
    """An aiosmtpd handler that stores each message in a Maildir, one copy
    per recipient, as qmail-local would deliver it."""

    def __init__(self, maildir: str) -> None:
        """Opens (creating it if need be) the Maildir ``maildir``; OSError
        when it is not one (its tmp, new and cur must be directories)."""
        self.maildir = mailbox.Maildir(maildir, factory=None, create=True)
        if not all(os.path.isdir(os.path.join(maildir, sub)) for sub in ("tmp", "new", "cur")):
            why = "not a Maildir (its tmp, new and cur must be directories)"
            raise NotADirectoryError(errno.ENOTDIR, why, maildir)

    async def handle_DATA(self, server: SMTP, session: TcpRulesSession, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        body = content.replace(b"\r\n", b"\n")
        sender = envelope.mail_from or ""
        if sender == "<>":  # aiosmtpd's null sender (a bounce)
            sender = ""
        try:
            for recipient in envelope.rcpt_tos:
                self.maildir.add(qmail_local_lines(sender, recipient) + body)
        except OSError as exc:
            # A temporary failure, as qmail-smtpd answers when the queue
            # fails: the client tries again (copies already stored for
            # earlier recipients are delivered again then, as qmail-local
            # may deliver twice).  Never a 5xx: the sender would bounce it.
            log.warning("unable to deliver to the Maildir: %s", exc)
            return QUEUE_FAILED
        return "250 ok"


class _Parser(argparse.ArgumentParser):
    """argparse, with djb's exit code for bad usage (100, not 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(100, f"{self.prog}: usage error: {message}\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="relay.py", description="A mail relay with qmail's access control.")
    parser.add_argument("--rules", required=True, help="the tcprules database (RULES.cdb)")
    parser.add_argument("--rcpthosts", required=True, help="qmail's control/rcpthosts file")
    parser.add_argument("--morercpthosts", metavar="CDB", help="qmail's control/morercpthosts.cdb")
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--paranoid", dest="paranoid", action="store_true", default=True)
    mode.add_argument("--no-paranoid", dest="paranoid", action="store_false")
    parser.add_argument(
        "--dns-server", metavar="IP", help="default: $DNSCACHEIP, else /etc/resolv.conf's"
    )
    parser.add_argument(
        "--defer-on-dns-failure",
        action="store_true",
        help="answer 451, not qmail's 553, to a recipient outside rcpthosts when the "
        "client's name could not be looked up for now",
    )
    parser.add_argument("--maildir", required=True, metavar="DIR")
    args = parser.parse_args(argv)
    host, colon, port = args.listen.rpartition(":")
    if not colon or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        parser.error(f"--listen needs HOST:PORT (a port 0-65535), not {args.listen!r}")
    args.host, args.port = host.strip("[]"), int(port)
    if args.dns_server is not None:
        try:
            ipaddress.ip_address(args.dns_server)
        except ValueError:
            parser.error(f"--dns-server needs an IP address, not {args.dns_server!r}")
    return args


class Fatal(Exception):
    """A file the relay cannot start without: the message names the
    option, the file and what is wrong."""


def opened(option: str, path: str, open_it: Callable[[str], T]) -> T:
    """``open_it(path)``, its OSError or pycdb.Error a :class:`Fatal`."""
    try:
        return open_it(path)
    except OSError as exc:
        raise Fatal(f"unable to read {option} {path}: {exc.strerror or exc}") from None
    except pycdb.Error as exc:  # a damaged database, or rules text given as one
        hint = " (compile rules text first: pycdb make)" if option == "--rules" else ""
        raise Fatal(f"unable to read {option}: {exc}{hint}") from None


async def serve(args: argparse.Namespace) -> None:
    rules = opened("--rules", args.rules, lambda path: RuleSet(path, reload_interval=0))
    resolver = RemoteHostResolver(
        paranoid=args.paranoid,
        nameservers=None if args.dns_server is None else [args.dns_server],
    )
    rcpthosts = opened("--rcpthosts", args.rcpthosts, read_rcpthosts)

    def policy_with(more: str | None) -> RelayPolicy:
        return RelayPolicy(
            rules,
            rcpthosts,
            resolver,
            defer_on_dns_failure=args.defer_on_dns_failure,
            morercpthosts=more,
        )

    more = args.morercpthosts
    policy = policy_with(None) if more is None else opened("--morercpthosts", more, policy_with)
    handler = opened("--maildir", args.maildir, MaildirDelivery)
    hostname = socket.gethostname()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: policy.smtp(handler, hostname=hostname), args.host, args.port
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"relay.py: listening on {host}:{port}", flush=True)
    async with server:
        await stop.wait()
    rules.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="relay.py: %(message)s")
    try:
        asyncio.run(serve(args))
    except Fatal as exc:
        print(f"relay.py: fatal: {exc}", file=sys.stderr)
        return 111
    except OSError as exc:  # the address to listen on
        print(f"relay.py: fatal: unable to listen on {args.listen}: {exc}", file=sys.stderr)
        return 111
    return 0


if __name__ == "__main__":
    sys.exit(main())
