"""The daemon's collector settings, applied in a child process (they are process-wide)."""

from __future__ import annotations

import subprocess
import sys

from edgegw.proxy import gctuning


def test_tune_raises_the_thresholds_and_freezes_what_start_up_made() -> None:
    code = (
        "import gc\n"
        "from edgegw.proxy import gctuning\n"
        "gctuning.tune()\n"
        "print(*gc.get_threshold(), gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    young, middle, old, frozen, tracked = (int(x) for x in out)
    assert (young, middle, old) == (
        gctuning.YOUNG_THRESHOLD,
        gctuning.MIDDLE_THRESHOLD,
        gctuning.OLD_THRESHOLD,
    )
    assert frozen > 1000  # the modules imported so far, at least
    assert tracked < frozen  # collections now walk only what came after
