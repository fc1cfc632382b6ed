"""The daemon's collector settings, applied in a child process (they are process-wide)."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys

import pytest

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


def test_a_long_full_collection_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    pauses = gctuning.PauseLog(threshold=0.0)  # every full collection counts as long here
    gc.callbacks.append(pauses)
    try:
        with caplog.at_level(logging.INFO, logger="edgegw.proxy.gctuning"):
            gc.collect(1)  # a young collection is not logged
            assert not caplog.records
            gc.collect()
    finally:
        gc.callbacks.remove(pauses)
    (record,) = caplog.records
    assert "full garbage collection paused the gateway" in record.getMessage()
    assert pauses.longest > 0


def test_short_full_collections_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    pauses = gctuning.PauseLog(threshold=60.0)
    gc.callbacks.append(pauses)
    try:
        with caplog.at_level(logging.INFO, logger="edgegw.proxy.gctuning"):
            gc.collect()
    finally:
        gc.callbacks.remove(pauses)
    assert not caplog.records and pauses.longest > 0
