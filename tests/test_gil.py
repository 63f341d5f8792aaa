"""The C core's long calls (finishing a file, compiling rules) release the
GIL, and while one runs no other thread can touch the maker.

Deterministic, no timing: the maker writes into a pipe that only a
Python thread drains.  If the call held the GIL while its write() waits
for room, the draining thread could never run and the child would hang;
the subprocess timeout turns that into a failure.  (The pure backend
passes too: its writes are os.write, which releases the GIL.)
"""

from __future__ import annotations

import subprocess
import textwrap

from helpers import child_env, python

# A pipe of 1 MiB holds every record added (the adds keep the GIL, so
# they must never wait on the pipe); the hash tables written by finish,
# or the records the compiler adds, do not fit: the call blocks in
# write() until the drainer reads.  The header's pwrite fails on a pipe
# (ESPIPE): finish ends in OSError, which is expected.
_CHILD = textwrap.dedent(
    """
    import errno, fcntl, os, sys, threading
    from pycdb import _backend
    from pycdb.rules.compiler import compile_chunks
    from pycdb.errors import RulesSyntaxError

    what = sys.argv[1]
    impl = _backend.current()
    r, w = os.pipe()
    fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ
    got = []

    def drain():
        while True:
            data = os.read(r, 1 << 16)
            if not data:
                return
            got.append(len(data))

    maker = impl.Maker(w, 0xFFFFFFFF)
    if what == "finish":
        for i in range(50000):
            maker.add(b"%06d" % i, b"")  # 14 bytes a record: 700 KB in all
        threading.Thread(target=drain, daemon=True).start()
        try:
            maker.finish()  # 800 KB of tables into the ~340 KB left
        except OSError as exc:
            assert exc.errno == errno.ESPIPE, exc
        expected = 2048 + 50000 * 14 + 50000 * 16
    else:
        text = b"".join(b"10.%d.%d.%d:allow,X=\\"1\\"\\n" % (i >> 16, (i >> 8) & 255, i & 255)
                        for i in range(100000))
        threading.Thread(target=drain, daemon=True).start()
        if impl.RulesCompiler is None:
            n = compile_chunks([text], maker.add, "f", maker.add_many)
        else:
            c = impl.RulesCompiler(maker, lambda *a: RulesSyntaxError("f", a[0], a[1], "x"))
            c.feed(text)
            n = c.end()
        assert n == 100000, n
        maker.close()
        expected = None
    os.close(w)
    while sum(got) < (expected or 1):
        threading.Event().wait(0.01)
    print("ok", sum(got) >= (expected or 0))
    """
)


def _run(what: str, backend: str) -> None:
    done = subprocess.run(
        python("-c", _CHILD, what),
        capture_output=True,
        text=True,
        timeout=120,  # a held GIL hangs the child: this fails the test
        env=child_env(backend=backend),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "True"]


def test_finish_releases_the_gil(backend: str) -> None:
    _run("finish", backend)


def test_the_rules_compiler_releases_the_gil(backend: str) -> None:
    _run("compile", backend)


_BUSY = textwrap.dedent(
    """
    import fcntl, os, select, struct, termios, threading
    from pycdb import _backend

    impl = _backend.current()
    r, w = os.pipe()
    fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ
    maker = impl.Maker(w, 0xFFFFFFFF)
    for i in range(50000):
        maker.add(b"%06d" % i, b"")
    errors = []

    def finish():
        try:
            maker.finish()
        except OSError:
            pass

    worker = threading.Thread(target=finish)
    worker.start()
    # Wait until the pipe holds more than the adds wrote: finish is then
    # running, and it cannot return before the pipe is drained (its 800 KB
    # of tables do not fit).
    while struct.unpack("i", fcntl.ioctl(r, termios.FIONREAD, b"\\0" * 4))[0] <= 2048 + 50000 * 14:
        threading.Event().wait(0.005)
    for call in (lambda: maker.add(b"k", b"v"), maker.close):
        try:
            call()
        except ValueError as exc:
            errors.append(str(exc))
    while worker.is_alive():  # drain, never waiting on an empty pipe
        if select.select([r], [], [], 0.05)[0]:
            os.read(r, 1 << 16)
    print("|".join(errors))
    """
)


def test_a_finishing_maker_refuses_other_threads(backend: str) -> None:
    """While finish runs without the GIL, an add or a close from another
    thread is a ValueError, never a write into memory finish is using."""
    done = subprocess.run(
        python("-c", _BUSY),
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(backend=backend),
    )
    assert done.returncode == 0, done.stderr
    errors = done.stdout.strip().split("|")
    if backend == "cffi":
        assert (
            errors == ["this cdb writer is in use by another thread (finishing or compiling)"] * 2
        )
    else:  # finish marks the pure maker finished first; close is always allowed
        assert errors == ["this cdb writer was finished, failed earlier, or is closed"]
