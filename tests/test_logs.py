"""Logging set-up: our format on stderr, and pymodbus quiet unless the level is debug."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from edgegw.config import BusConfig
from edgegw.energy.meters import ModbusBus, ModbusTimeout, find_profile
from edgegw.energy.registers import plan_reads
from edgegw.logs import setup_logging
from edgegw.sim.meter import SimMeter

_TOUCHED = ("", "pymodbus", "pymodbus.logging", "websockets", "ocpp", "aiosqlite")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """setup_logging rewires the root logger: give pytest its handlers back afterwards."""
    saved = {
        name: (logger.level, list(logger.handlers), logger.propagate)
        for name in _TOUCHED
        for logger in [logging.getLogger(name)]
    }
    yield
    for name, (level, handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate


async def _read_a_silent_meter() -> None:
    """A real pymodbus timeout: pymodbus logs it at ERROR with the frames it saw."""
    async with SimMeter("eastron-sdm630") as meter:
        meter.silent = True
        bus = ModbusBus(
            BusConfig(transport="tcp", host="127.0.0.1", port=meter.port, timeout=0.1, retries=0),
            name="quiet",
            reconnect_min_delay=0,
            reconnect_max_delay=0,
        )
        try:
            with pytest.raises(ModbusTimeout):
                await bus.read_blocks(1, plan_reads(find_profile("eastron-sdm630")))
        finally:
            await bus.close()


async def test_pymodbus_errors_are_silent_at_info(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", journal=False)
    await _read_a_silent_meter()
    logging.getLogger("edgegw.test").error("our own error %s", "still shows")
    err = capsys.readouterr().err
    assert "No response received" not in err
    assert "pymodbus" not in err
    assert "ERROR   edgegw.test: our own error still shows" in err


async def test_pymodbus_speaks_through_our_handler_at_debug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # pymodbus' own helper adds a handler of its own: our set-up must remove it.
    from pymodbus import pymodbus_apply_logging_config

    pymodbus_apply_logging_config("DEBUG")
    setup_logging("debug", journal=True)
    await _read_a_silent_meter()
    lines = capsys.readouterr().err.splitlines()
    timeouts = [line for line in lines if "No response received" in line]
    assert timeouts == [
        "<3>pymodbus.logging: No response received after 0 retries, continue with next request"
    ]


async def test_back_to_info_after_debug_quietens_pymodbus_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("debug", journal=False)
    setup_logging("warning", journal=False)
    await _read_a_silent_meter()
    assert "pymodbus" not in capsys.readouterr().err
    assert logging.getLogger("pymodbus").getEffectiveLevel() == logging.CRITICAL
