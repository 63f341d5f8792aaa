"""Build glue only: every piece of metadata lives in pyproject.toml.

The C core is optional at install time: when it cannot be compiled the
install goes on with the pure-Python backend and says so loudly.  Set
PYCDB_REQUIRE_CFFI=1 to make a failed compile fatal (CI does).
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure
            self._fallback(exc)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._fallback(exc)

    @staticmethod
    def _fallback(exc: Exception) -> None:
        if os.environ.get("PYCDB_REQUIRE_CFFI") == "1":
            raise
        bar = "*" * 72
        sys.stderr.write(
            f"\n{bar}\n"
            "WARNING: pycdb's C core could not be compiled:\n"
            f"  {exc}\n"
            "pycdb is being installed with the pure-Python backend only.\n"
            "It gives the same answers, more slowly.  Set PYCDB_REQUIRE_CFFI=1\n"
            "to make this failure stop the install instead.\n"
            f"{bar}\n\n"
        )


setup(
    cffi_modules=["src_c/build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)
