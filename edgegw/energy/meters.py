"""Reading the site's electricity meters over Modbus TCP and Modbus RTU (RS-485).

Load capping is only as safe as the meter reading it follows, so this module is strict about
two things. First, a bus is a shared medium: several meters (unit ids) hang on one RS-485 line
or one TCP gateway, and two requests in flight at once garble each other's answers (evcc lost
weeks to such a race, issue 17500). :class:`ModbusBus` therefore owns one pymodbus client per
physical bus and serialises every request behind a lock, keeps the RTU silent interval between
frames, connects lazily and reconnects with a backoff. Second, a reading the gateway must not
act on is never passed on: :class:`MeterPoller` rejects NaN and infinite values, impossible
currents, voltages and powers, an answer for another function code than the request's, and
a register image that stopped moving (a hung meter or a gateway serving its cache), and says
why in :attr:`MeterPoller.health`.

Failures are told apart (:class:`ModbusTimeout`, :class:`ModbusExceptionResponse`,
:class:`ModbusFrameError`, :class:`ModbusConnectionError`) because each points the installer
at a different fault: wiring or unit id, register map, termination or baud rate, network.
All of them are retryable; only :class:`MeterConfigError` is not.

:class:`MeterService` builds the buses and pollers from the configuration and runs them;
:func:`probe` and :func:`scan` are one-shot helpers for the installer's CLI.

The code lives in :mod:`~edgegw.energy.modbuserrors`, :mod:`~edgegw.energy.readplan`,
:mod:`~edgegw.energy.modbusbus`, :mod:`~edgegw.energy.meterhealth`,
:mod:`~edgegw.energy.meterpoller` and :mod:`~edgegw.energy.meterservice`; every name is
importable from here.
"""

from __future__ import annotations

from edgegw.energy.meterhealth import (
    DEFAULT_FROZEN_AFTER,
    FrozenReading,
    HealthListener,
    HealthState,
    MeterHealth,
    MeterSample,
    SampleListener,
    SanityLimits,
    implausible,
)
from edgegw.energy.meterpoller import MeterPoller
from edgegw.energy.meterservice import (
    MeterService,
    TemplateProfileError,
    default_profiles_dir,
    find_profile,
    probe,
    scan,
)
from edgegw.energy.modbusbus import Clock, ModbusBus, describe_bus, rtu_silent_interval
from edgegw.energy.modbuserrors import (
    MeterConfigError,
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusTimeout,
)
from edgegw.energy.readplan import SPLIT_CODES, PlanRead, ReadPlan, Split, describe_block

__all__ = [
    "DEFAULT_FROZEN_AFTER",
    "SPLIT_CODES",
    "Clock",
    "FrozenReading",
    "HealthListener",
    "HealthState",
    "MeterConfigError",
    "MeterHealth",
    "MeterPoller",
    "MeterSample",
    "MeterService",
    "ModbusBus",
    "ModbusConnectionError",
    "ModbusError",
    "ModbusExceptionResponse",
    "ModbusFrameError",
    "ModbusTimeout",
    "PlanRead",
    "ReadPlan",
    "SampleListener",
    "SanityLimits",
    "Split",
    "TemplateProfileError",
    "default_profiles_dir",
    "describe_block",
    "describe_bus",
    "find_profile",
    "implausible",
    "probe",
    "rtu_silent_interval",
    "scan",
]
