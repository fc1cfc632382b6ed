"""A private pcscd with vpcd virtual readers, for tests.

pcsc-lite 1.9's daemon always listens on ``/run/pcscd/pcscd.comm`` (it ignores
``PCSCLITE_CSOCK_NAME``; only the client library honours it). So each :class:`Pcscd` runs in
its own mount namespace (``unshare --mount``, root only) with a private directory mounted over
``/run/pcscd``: several can run at once, none touches a system pcscd, and clients reach it with
``PCSCLITE_CSOCK_NAME=<dir>/pcscd.comm``. libpcsclite reads that variable once per process, so
one process talks to one pcscd; other instances are for subprocesses.

The vpcd driver serves one ``reader.conf`` entry with two slots, which pcscd lists as two
readers, ``<name> 00 00`` and ``<name> 00 01``, listening on ``port`` and ``port + 1``. (A
second entry would share the first one's slots: vpcd keeps one context per slot number.)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Final

VPCD_DRIVER: Final = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
DEBIAN_PACKAGES: Final = "pcscd vsmartcard-vpcd"
_PR_SET_PDEATHSIG: Final = 1
_UNSHARE: Final = ("unshare", "--mount", "--propagation", "private", "--")


def unavailable() -> str | None:
    """Why a private pcscd cannot run here (for ``pytest.skip``), or None."""
    if shutil.which("pcscd") is None or not VPCD_DRIVER.exists():
        return (
            f"pcscd with the vpcd virtual reader is not installed (apt install {DEBIAN_PACKAGES})"
        )
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is missing: a private pcscd needs a mount namespace"
    if os.geteuid() != 0:
        return "a private pcscd needs root (unshare --mount to give it its own /run/pcscd)"
    return None


def free_port_pair() -> int:
    """A port P with P and P + 1 free on 127.0.0.1 (vpcd's two slots); vpcd cannot take port 0."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as second, contextlib.suppress(OSError):
            second.bind(("127.0.0.1", port + 1))
            return int(port)
    raise RuntimeError("no two consecutive free ports")


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the test process dies, so no pcscd is left behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Pcscd:
    """One private pcscd with a vpcd reader named ``name`` (two slots, so two readers)."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.conf = workdir / "reader.conf.d"
        self.run_dir = workdir / "run"
        self.socket = self.run_dir / "pcscd.comm"
        self.name = name
        self.base_port = free_port_pair()
        self.log: deque[str] = deque(maxlen=400)
        self._ready = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._drain: threading.Thread | None = None

    def reader(self, slot: int = 0) -> str:
        """The name pcscd gives slot ``slot``."""
        return f"{self.name} 00 {slot:02d}"

    def port(self, slot: int = 0) -> int:
        """Where a virtual card connects to lie on slot ``slot``."""
        return self.base_port + slot

    @property
    def readers(self) -> list[str]:
        return [self.reader(0), self.reader(1)]

    @property
    def env(self) -> dict[str, str]:
        """Environment for a client process of this pcscd."""
        return {**os.environ, "PCSCLITE_CSOCK_NAME": str(self.socket)}

    def start(self, timeout: float = 15) -> None:
        self.conf.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.conf / "vpcd").write_text(
            f'FRIENDLYNAME "{self.name}"\n'
            f"DEVICENAME /dev/null:{self.base_port}\n"
            f"LIBPATH {VPCD_DRIVER}\n"
            f"CHANNELID {self.base_port}\n"
        )
        script = 'mkdir -p /run/pcscd && mount --bind "$1" /run/pcscd && exec pcscd -f -i -c "$2"'
        self._ready.clear()
        process = subprocess.Popen(
            [*_UNSHARE, "sh", "-c", script, "sh", str(self.run_dir), str(self.conf)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - single-threaded enough for a test
        )
        self._process = process
        self._drain = threading.Thread(target=self._read_log, args=(process,), daemon=True)
        self._drain.start()
        if not self._ready.wait(timeout) or process.poll() is not None:
            self.stop()
            raise RuntimeError("pcscd did not start:\n" + "\n".join(self.log))

    def _read_log(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.log.append(line.rstrip())
            if "daemon ready" in line:
                self._ready.set()
        self._ready.set()  # it ended: let start() look at why

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._drain is not None:
            self._drain.join(5)

    def __enter__(self) -> Pcscd:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
