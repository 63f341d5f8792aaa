"""The one place the version is written (pyproject reads it, the C build embeds it)."""

__version__ = "0.1.0"
