"""ucspi-tcp's rules language (tcprules) and tcpserver's rules check."""

# ---- check: tcpserver's decision for a connection ---------------------
# ---- parse: tcprules text, structured and compiled ---------------------
from .compiler import compile as compile
from .language import Rule as Rule
from .language import parse as parse
from .ruleset import Decision as Decision
from .ruleset import RuleSet as RuleSet
