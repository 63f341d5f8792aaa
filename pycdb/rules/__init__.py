"""ucspi-tcp's rules language (tcprules) and tcpserver's rules check.

Planned modules (each owned by one piece of work):

* ``parse``  - tcprules text -> structured rules; ``compile`` -> cdb
* ``data``   - the record data tcprules writes (``D\\0``, ``+NAME=VALUE\\0``)
* ``check``  - ``RuleSet``: tcpserver's key order over a rules cdb
* ``validate``, ``lint``, ``decompile`` - inspecting existing databases
"""

# ---- check: tcpserver's decision for a connection ---------------------
from .check import Decision as Decision
from .check import RuleSet as RuleSet

# ---- parse: tcprules text, structured and compiled ---------------------
from .parse import Rule as Rule
from .parse import compile as compile
from .parse import parse as parse
