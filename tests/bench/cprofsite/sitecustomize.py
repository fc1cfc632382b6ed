"""A deterministic profile of a relay under load, loaded by ``site`` from PYTHONPATH.

Put this folder on PYTHONPATH and name an output prefix in ``EDGEGW_CPROF`` when running
``capacity.py`` or ``replay.py``. In the gateway (``edgegw run``) and the byte-pipe relay only,
SIGUSR1 starts cProfile and SIGUSR2 stops it and writes ``<prefix>.edgegw`` or
``<prefix>.bytepipe``; read them with ``tests/bench/callprofile.py``. Signal only the process of
your own run (``pgrep -af capacity<N>.toml``): without this folder on its path, SIGUSR1 ends it.
Nothing here runs unless ``EDGEGW_CPROF`` is set.
"""

from __future__ import annotations

import cProfile
import os
import signal
from pathlib import Path
from types import FrameType


def _install(prefix: str, relay: str) -> None:
    profile = cProfile.Profile()

    def start(_signum: int, _frame: FrameType | None) -> None:
        profile.enable()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        profile.disable()
        profile.dump_stats(f"{prefix}.{relay}")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def _relay() -> str | None:
    """Which relay this process is: ``-m edgegw run`` or ``bytepipe.py`` (None: another)."""
    args = Path("/proc/self/cmdline").read_bytes().decode(errors="replace").split("\0")
    if any(Path(arg).name == "bytepipe.py" for arg in args):
        return "bytepipe"
    return "edgegw" if "edgegw" in args and "run" in args else None


_prefix = os.environ.get("EDGEGW_CPROF")
if _prefix:
    _which = _relay()
    if _which is not None:
        _install(_prefix, _which)
