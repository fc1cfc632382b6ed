"""What ``edgegw run`` checks before it starts anything: the mistakes a restart cannot fix.

systemd restarts the daemon when it fails, except on exit 3 (``RestartPreventExitStatus=3``
in ``systemd/edgegw.service``). So a device file the configuration names that is unknown or
broken is found here and ends the start with exit 3 and one line each, instead of a traceback
every two seconds.

A serial device that is not there (after a few seconds' grace: at boot a USB adapter's
``/dev/ttyUSB*`` can come a moment after the daemon starts) or that this user may not open is
reported in one clear line each, and the daemon starts all the same: a gateway that stopped
would leave the chargers without a server and without a cap, while a running one counts the
bus's meters as lost and caps at the safe fallback limits until the device can be opened.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from edgegw.config import Config
from edgegw.hardware_catalogue import HardwareCatalogue, HardwareError

SERIAL_GRACE: Final = 5.0
"""Seconds a missing serial device file may take to appear before it is reported."""

_POLL: Final = 0.25


def device_file_problems(config: Config, catalogue: HardwareCatalogue) -> list[str]:
    """The configured meter profiles and charger models, and every charger model file (the
    daemon loads them all), each problem naming its configuration key or file."""
    problems = catalogue.check_config(config)
    try:
        catalogue.charger_models()
    except HardwareError as exc:
        problems.extend(p for p in exc.problems if p not in problems)
    return problems


def serial_problems(
    config: Config,
    *,
    grace: float = SERIAL_GRACE,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """RS-485 devices of the configuration that are missing (after ``grace`` seconds) or that
    this user may not open. Other errors (busy, an unplugged adapter's I/O error) are left to
    the meter poller, which reports and retries them."""
    devices = {
        bus.device: f"buses.{name}.device"
        for name, bus in config.buses.items()
        if bus.transport == "rtu" and bus.device
    }
    deadline = clock() + grace
    while any(not Path(d).exists() for d in devices) and clock() < deadline:
        sleep(_POLL)
    problems: list[str] = []
    for device, key in devices.items():
        problem = _open_problem(device)
        if problem:
            problems.append(f"{key}: {device}: {problem}")
    return problems


def _open_problem(device: str) -> str | None:
    try:
        fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        return (
            "no such serial device; check the adapter is plugged in and the name "
            "(ls /dev/ttyUSB* /dev/ttyACM* /dev/ttyAMA* /dev/ttyS* /dev/ttySC*)"
        )
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return (
                f"may not open it ({exc.strerror}): the user running edgegw must be in the "
                "group that owns it (dialout), and under systemd the unit's DeviceAllow= "
                "must cover it"
            )
        return None
    os.close(fd)
    return None
