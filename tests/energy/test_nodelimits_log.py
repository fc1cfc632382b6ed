"""What lowering a node logs: a lowering that starts or ends, and every change of a signal's
limit, at info; the moves of peak shaving's cap (every few seconds while it shaves) at debug."""

from __future__ import annotations

import logging

import pytest

from edgegw.energy import peakservice
from edgegw.energy.nodelimits import FOLLOWING_SOURCES, NodeLimits


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "edgegw.energy.controller" and r.levelno == level
    ]


def test_peak_shaving_moves_log_at_debug_its_start_and_end_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert peakservice.SOURCE in FOLLOWING_SOURCES
    limits = NodeLimits()
    caplog.set_level(logging.DEBUG, logger="edgegw.energy.controller")
    limits.lower("peak", None, (30.0, 30.0, 30.0))
    for amps in (29.9, 29.5, 31.0, 28.2, 28.2):
        limits.lower("peak", None, (amps, amps, amps))
    limits.lower("peak", None, None)
    assert _lines(caplog, logging.INFO) == [
        "peak lowers the site to 30/30/30 A",
        "peak no longer lowers the site",
    ]
    assert _lines(caplog, logging.DEBUG) == [
        f"peak lowers the site to {a}/{a}/{a} A" for a in ("29.9", "29.5", "31", "28.2")
    ]
    assert limits.lowered((40.0, 40.0, 40.0), None) == (40.0, 40.0, 40.0)


def test_other_sources_log_every_change_at_info(caplog: pytest.LogCaptureFixture) -> None:
    limits = NodeLimits()
    caplog.set_level(logging.DEBUG, logger="edgegw.energy.controller")
    limits.lower("peak", None, (30.0, 30.0, 30.0))
    limits.lower("dso", "steuve", (18.3, 18.3, 18.3))
    limits.lower("dso", "steuve", (18.3, 18.3, 18.3))  # unchanged: no line
    limits.lower("dso", "steuve", (24.4, 24.4, 24.4))  # a reload put more chargers under it
    limits.lower("peak", "steuve", (20.0, 20.0, 20.0))  # another node: a start of its own
    limits.lower("dso", "steuve", None)
    assert _lines(caplog, logging.INFO) == [
        "peak lowers the site to 30/30/30 A",
        "dso lowers steuve to 18.3/18.3/18.3 A",
        "dso lowers steuve to 24.4/24.4/24.4 A",
        "peak lowers steuve to 20/20/20 A",
        "dso no longer lowers steuve",
    ]
    assert _lines(caplog, logging.DEBUG) == []
    assert limits.lowered((63.0, 63.0, 63.0), "steuve") == (20.0, 20.0, 20.0)
