"""Connect to a real tcpserver from many client addresses, inside a
network namespace of its own (``unshare --net``), and report what the
server's child saw.  Run by tests/test_dialect_oracle.py as

    unshare --net PYTHON -I tests/netns_probe.py < request.json

with the standard library only (it never imports pycdb).  In the new
namespace it brings the loopback interface up and makes every IPv6 and
IPv4 address local to it (``ip route add local ::/0 dev lo``), so a
client socket can be bound to any address; nothing outside the namespace
sees any of this, and it all goes when the process exits.

The request: ``{"tcpserver": PATH, "flags": [...], "rules": PATH or
null, "clients": [ADDRESS, ...]}``.  The answer, on standard output, one
JSON object: ``{"clients": [{"address": A, "served": bool, "env":
{NAME: VALUE}}]}``: ``served`` is false when tcpserver closed the
connection without running its child (a ``deny`` rule); ``env`` is the
child's TCPREMOTEIP, PROTO, TCP6REMOTEIP and the variables named
``PYCDB_*`` (set by rules).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

#: The child: print the variables the test reads, NUL-separated.
CHILD = r"""for v in TCPREMOTEIP PROTO TCP6REMOTEIP PYCDB_RULE; do
  eval "x=\${$v+set}"; if [ "$x" = set ]; then eval "printf '%s=%s\0' $v \"\$$v\""; fi
done"""


def setup() -> None:
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "-6", "route", "add", "local", "::/0", "dev", "lo"],
        ["ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo"],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    for name in ("/proc/sys/net/ipv6/ip_nonlocal_bind", "/proc/sys/net/ipv4/ip_nonlocal_bind"):
        with open(name, "w") as f:
            f.write("1")


def visit(port: int, address: str) -> dict[str, object]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.bind((address, 0))
        s.connect(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    env = {}
    for item in data.split(b"\0"):
        name, eq, value = item.partition(b"=")
        if eq:
            env[name.decode()] = value.decode()
    return {"address": address, "served": bool(env), "env": env}


def main() -> int:
    request = json.load(sys.stdin)
    setup()
    command = [request["tcpserver"], "-R", "-H", "-l", "localhost", "-1", *request["flags"]]
    if request.get("rules"):
        command += ["-x", request["rules"]]
    server = subprocess.Popen(
        [*command, "0", "0", "sh", "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        answers = [visit(port, address) for address in request["clients"]]
    finally:
        server.terminate()
        server.wait(timeout=20)
    json.dump({"clients": answers}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
