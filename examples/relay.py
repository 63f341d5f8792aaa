"""A mail relay in Python with qmail's access control: tcpserver's rules
database, forward-confirmed host names, rblsmtpd and qmail-smtpd's
rcpthosts/RELAYCLIENT, on aiosmtpd (pycdb.integrations.aiosmtpd).

    python examples/relay.py --rules RULES.cdb --rcpthosts FILE \\
        --listen HOST:PORT [--paranoid | --no-paranoid] [--dns-server IP] \\
        --maildir DIR

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
``--dns-server`` or the servers in $DNSCACHEIP.  It prints
``relay.py: listening on HOST:PORT`` once it accepts connections
(``--listen 127.0.0.1:0`` picks a free port) and stops on SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import mailbox
import signal
import socket
import sys

from aiosmtpd.smtp import SMTP, Envelope

from pycdb.integrations.aiosmtpd import RelayPolicy, TcpRulesSession, read_rcpthosts
from pycdb.remotehost import RemoteHostResolver
from pycdb.rules import RuleSet

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
        self.maildir = mailbox.Maildir(maildir, factory=None, create=True)

    async def handle_DATA(self, server: SMTP, session: TcpRulesSession, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        body = content.replace(b"\r\n", b"\n")
        sender = envelope.mail_from or ""
        if sender == "<>":  # aiosmtpd's null sender (a bounce)
            sender = ""
        for recipient in envelope.rcpt_tos:
            self.maildir.add(qmail_local_lines(sender, recipient) + body)
        return "250 ok"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="relay.py", description="A mail relay with qmail's access control."
    )
    parser.add_argument("--rules", required=True, help="the tcprules database (RULES.cdb)")
    parser.add_argument("--rcpthosts", required=True, help="qmail's control/rcpthosts file")
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--paranoid", dest="paranoid", action="store_true", default=True)
    mode.add_argument("--no-paranoid", dest="paranoid", action="store_false")
    parser.add_argument("--dns-server", metavar="IP", help="default: $DNSCACHEIP")
    parser.add_argument("--maildir", required=True, metavar="DIR")
    args = parser.parse_args(argv)
    host, colon, port = args.listen.rpartition(":")
    if not colon or not port.isdigit():
        parser.error(f"--listen needs HOST:PORT, not {args.listen!r}")
    args.host, args.port = host.strip("[]"), int(port)
    return args


async def serve(args: argparse.Namespace) -> None:
    rules = RuleSet(args.rules, reload_interval=0)
    resolver = RemoteHostResolver(
        paranoid=args.paranoid,
        nameservers=None if args.dns_server is None else [args.dns_server],
    )
    policy = RelayPolicy(rules, read_rcpthosts(args.rcpthosts), resolver)
    handler = MaildirDelivery(args.maildir)
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
    except OSError as exc:
        print(f"relay.py: fatal: {exc}", file=sys.stderr)
        return 111
    return 0


if __name__ == "__main__":
    sys.exit(main())
