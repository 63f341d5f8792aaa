"""ucspi-tcp's rules language (tcprules) and tcpserver's rules check.

Modules (each owned by one piece of work):

* ``parse``  - tcprules text -> structured rules; ``compile`` -> cdb
* ``data``   - the record data tcprules writes (``D\\0``, ``+NAME=VALUE\\0``)
* ``check``  - ``RuleSet``: tcpserver's key order over a rules cdb
* ``validate``, ``lint``, ``decompile`` - inspecting existing databases
"""

from __future__ import annotations

# tcprules: parsing and compiling (pycdb.rules.parse)
from .parse import Rule, compile, parse

__all__ = [
    # tcprules: parsing and compiling
    "Rule",
    "compile",
    "parse",
]
