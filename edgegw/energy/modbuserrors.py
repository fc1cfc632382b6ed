"""How a Modbus read fails, told apart because each points the installer at a different fault:
wiring or unit id (:class:`ModbusTimeout`), register map (:class:`ModbusExceptionResponse`),
termination or baud rate (:class:`ModbusFrameError`), network (:class:`ModbusConnectionError`).
All are retryable; only :class:`MeterConfigError` is not.
"""

from __future__ import annotations

from typing import ClassVar, Final

_EXCEPTION_NAMES: Final = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    7: "negative acknowledge",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


_FUNCTION_NAMES: Final = {
    1: "read coils",
    2: "read discrete inputs",
    3: "read holding registers",
    4: "read input registers",
}


_GATEWAY_NO_TARGET: Final = frozenset({10, 11})
"""Exception codes a TCP gateway sends for a unit that is not there (see :func:`scan`)."""


class ModbusError(Exception):
    """Talking to a meter failed. ``retryable`` says whether trying again can help."""

    retryable: ClassVar[bool] = True
    kind: ClassVar[str] = "modbus"


class ModbusTimeout(ModbusError, TimeoutError):
    """No answer at all: wrong unit id, baud rate or wiring, or the meter is off."""

    kind = "timeout"


class ModbusExceptionResponse(ModbusError):
    """The meter answered with a Modbus exception (e.g. 2: illegal data address)."""

    kind = "exception"

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)

    @property
    def code_name(self) -> str:
        """The standard name of :attr:`code`, e.g. ``illegal data address``."""
        return _EXCEPTION_NAMES.get(self.code, "unknown exception code")


class ModbusFrameError(ModbusError):
    """Bytes came back but no valid answer: CRC error, truncated frame, wrong unit.

    On RS-485 this points at termination, biasing, a baud/parity mismatch or two masters.
    """

    kind = "frame"


class ModbusConnectionError(ModbusError, ConnectionError):
    """The bus itself is unusable: TCP connection refused or lost, serial device missing."""

    kind = "connection"


class MeterConfigError(ModbusError, ValueError):
    """The meter or bus configuration is wrong; retrying will not help."""

    retryable = False
    kind = "config"


class _NotConnectedYet(ModbusConnectionError):
    """A request refused without trying: the bus waits out its reconnect backoff."""


class _ConnectionDropped(Exception):
    """Set on pymodbus' pending answer when the link drops mid-request, to fail at once."""
