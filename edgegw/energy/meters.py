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
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import termios
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Final

import serial
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import ModbusPDU

from edgegw.config import BusConfig, Config, MeterConfig
from edgegw.energy.registers import (
    BadReading,
    BlockRead,
    MeterProfile,
    Quantity,
    Reading,
    decode,
    plan_reads,
    split_block,
)
from edgegw.hardware_catalogue import HardwareCatalogue, HardwareError, shipped_files
from edgegw.hardware_catalogue import TemplateProfileError as CatalogueTemplateError
from edgegw.tasks import TaskOwner

__all__ = [
    "DEFAULT_FROZEN_AFTER",
    "FrozenReading",
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
    "SanityLimits",
    "Split",
    "TemplateProfileError",
    "default_profiles_dir",
    "describe_bus",
    "find_profile",
    "implausible",
    "probe",
    "rtu_silent_interval",
    "scan",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]

DEFAULT_FROZEN_AFTER: Final = 5.0
"""Seconds of an unchanged register image after which a meter's values count as stale, when
the configuration has no ``[site]`` (with one, its ``meter_lost_after``: the same as the
default here)."""

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

_FUNCTION_NAMES: Final = {3: "read holding registers", 4: "read input registers"}

_GATEWAY_NO_TARGET: Final = frozenset({10, 11})
"""Exception codes a TCP gateway sends for a unit that is not there (see :func:`scan`)."""


def default_profiles_dir() -> Path:
    """The shipped meter profiles (package ``edgegw.hardware``, an installed folder)."""
    return Path(str(shipped_files() / "meters"))


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


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


class FrozenReading(ValueError):
    """The meter keeps returning the very same registers while live values must move."""


class _NotConnectedYet(ModbusConnectionError):
    """A request refused without trying: the bus waits out its reconnect backoff."""


class _ConnectionDropped(Exception):
    """Set on pymodbus' pending answer when the link drops mid-request, to fail at once."""


# --------------------------------------------------------------------------------------------
# The read plan: the same requests for the daemon and the installer's probe
# --------------------------------------------------------------------------------------------

SPLIT_CODES: Final = frozenset({2, 3})
"""Exceptions that make a block read again as two smaller ones: 3 (illegal data value, the
request is longer than the meter takes) and 2 (illegal data address, the request spans a
register the meter does not define)."""


def describe_block(block: BlockRead) -> str:
    """``FC4 0x0000+76``: a request, for messages."""
    return f"FC{block.function_code} {block.address:#06x}+{block.count}"


@dataclass(frozen=True, slots=True)
class Split:
    """A block the meter refused, and the two requests that read it from then on."""

    block: BlockRead
    code: int
    halves: tuple[BlockRead, BlockRead]

    def __str__(self) -> str:
        name = _EXCEPTION_NAMES.get(self.code, "unknown exception code")
        parts = " and ".join(describe_block(half) for half in self.halves)
        return (
            f"{describe_block(self.block)} refused with exception {self.code} ({name}); "
            f"read as {parts} from now on"
        )


class ReadPlan:
    """The requests that read one meter: :func:`plan_reads`, then what the meter taught.

    The daemon's poller and the installer's probe (``edgegw meter probe``, ``doctor``) both
    read through a plan with :meth:`ModbusBus.read_plan`, so they send the same requests and
    fail on the same meters. A block the meter refuses with exception 2 or 3 is split in two
    (:func:`~edgegw.energy.registers.split_block`) and read again at once; the plan keeps the
    split, so later polls send the smaller requests straight away. A block of one value that
    is refused cannot be split: that read fails.
    """

    def __init__(self, profile: MeterProfile, quantities: Iterable[Quantity] | None = None) -> None:
        self.profile = profile
        self._blocks: list[BlockRead] = plan_reads(profile, quantities)
        self.splits: list[Split] = []
        """Every split so far, oldest first."""

    @property
    def blocks(self) -> tuple[BlockRead, ...]:
        """The requests one read sends now, in order."""
        return tuple(self._blocks)

    def split(self, block: BlockRead, code: int) -> Split | None:
        """Replace ``block``, refused with exception ``code``, by its two halves; ``None`` if
        the code is not one a smaller request can cure or the block holds a single value."""
        if code not in SPLIT_CODES or block not in self._blocks:
            return None
        halves = split_block(self.profile, block)
        if halves is None:
            return None
        index = self._blocks.index(block)
        self._blocks[index : index + 1] = halves
        split = Split(block, code, halves)
        self.splits.append(split)
        return split

    def advice(self) -> str | None:
        """What to put in the profile so the meter needs no split (None: nothing learnt)."""
        if not self.splits:
            return None
        if any(split.code == 3 for split in self.splits):
            largest = max(block.count for block in self._blocks)
            return (
                f"this meter takes fewer registers per request than profile "
                f"{self.profile.id!r} allows (max_read_registers = "
                f"{self.profile.modbus.max_read_registers}); max_read_registers = {largest} "
                "is known to work"
            )
        return (
            f"this meter refuses registers that profile {self.profile.id!r} reads across "
            "(exception 2); max_gap = 0 reads only the listed registers"
        )


@dataclass(frozen=True, slots=True)
class PlanRead:
    """What one pass over a :class:`ReadPlan` got: words per block (``{(fc, address):
    words}``, the form :func:`decode` expects), the blocks that failed (only with
    ``keep_going``), and the splits made during this pass."""

    words: dict[tuple[int, int], list[int]]
    failures: tuple[tuple[BlockRead, ModbusError], ...] = ()
    splits: tuple[Split, ...] = ()


# --------------------------------------------------------------------------------------------
# The bus
# --------------------------------------------------------------------------------------------


def rtu_silent_interval(baudrate: int, bits_per_char: int = 11) -> float:
    """The 3.5-character silence that separates two RTU frames, in seconds.

    Above 19200 baud the Modbus serial line specification fixes it at 1.75 ms.
    """
    if baudrate > 19200:
        return 0.00175
    return 3.5 * bits_per_char / baudrate


def _bits_per_char(config: BusConfig) -> int:
    return 1 + config.bytesize + (0 if config.parity == "N" else 1) + config.stopbits


def describe_bus(config: BusConfig) -> str:
    """Where a bus goes, for messages: ``10.0.0.5:502``, ``10.0.0.6:4196 (RTU over TCP)`` or
    ``/dev/ttyUSB0 9600 8N1``."""
    if config.transport == "tcp":
        return f"{config.host}:{config.port}"
    if config.transport == "rtu-over-tcp":
        return f"{config.host}:{config.port} (RTU over TCP)"
    return f"{config.device} {config.baudrate} {config.bytesize}{config.parity}{config.stopbits}"


def _describe_rtu_garbage(data: bytes, unit_id: int) -> str:
    """Why received RTU bytes were not an answer, as precisely as the bytes allow."""
    shown = data[:32].hex(" ") + (" ..." if len(data) > 32 else "")
    if len(data) >= 4 and FramerRTU.check_CRC(data[:-2], int.from_bytes(data[-2:], "big")):
        if data[0] != unit_id:
            return f"answer from unit {data[0]} to a request for unit {unit_id} ({shown})"
        return f"unexpected frame ({shown})"
    if len(data) < 5:
        return f"truncated frame of {len(data)} bytes ({shown})"
    return f"CRC mismatch in a {len(data)}-byte answer ({shown})"


def _connect_failure(config: BusConfig) -> str:
    """Why pymodbus could not connect, as far as we can tell (it only says it failed)."""
    if config.transport != "rtu":
        return "cannot connect (refused, unreachable or timed out)"
    assert config.device is not None
    if not Path(config.device).exists():
        return "serial device does not exist"
    return "cannot open the serial device (in use, or permission denied?)"


class ModbusBus:
    """One physical Modbus connection shared by the meters on it.

    Every request goes through one lock, so requests on a bus never overlap, whatever the
    number of meters polling it. Before each request on RTU the bus keeps the 3.5-character
    silence plus ``interframe_delay``. The connection is opened on the first request; after a
    failure, new attempts are refused until a backoff delay (doubling from
    ``reconnect_min_delay`` to ``reconnect_max_delay``) has passed, so a dead bus costs one
    quick error per poll instead of one connect timeout per meter. State changes are logged
    once, not every retry.
    """

    def __init__(
        self,
        config: BusConfig,
        *,
        name: str = "bus",
        reconnect_min_delay: float = 0.5,
        reconnect_max_delay: float = 10.0,
    ) -> None:
        if reconnect_min_delay < 0 or reconnect_max_delay < reconnect_min_delay:
            raise ValueError("need 0 <= reconnect_min_delay <= reconnect_max_delay")
        self.name = name
        self.config = config
        self._min_delay = reconnect_min_delay
        self._max_delay = reconnect_max_delay
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._delay = 0.0
        self._next_attempt = 0.0
        self._connected_logged = False
        self._failing_logged = False
        self._closed = False
        self._last_end = 0.0
        self._gap = config.interframe_delay
        if config.transport != "tcp":  # RTU over TCP: the converter's line needs it too
            self._gap += rtu_silent_interval(config.baudrate, _bits_per_char(config))
        # What the current request saw on the wire (filled by pymodbus' trace hooks).
        self._in_flight = False
        self._rx = b""
        self._answers = 0
        self.requests = 0
        """Requests sent (each retry counts)."""
        self.last_error: ModbusError | None = None
        self._cause: ModbusError | None = None
        """The last real failure (not a refusal during the backoff), for messages."""

    @property
    def endpoint(self) -> str:
        """Where this bus goes, e.g. ``10.0.0.5:502`` or ``/dev/ttyUSB0 9600 8N1``."""
        return describe_bus(self.config)

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def __repr__(self) -> str:
        return f"ModbusBus({self.name!r}, {self.endpoint})"

    async def read(self, unit_id: int, function_code: int, address: int, count: int) -> list[int]:
        """Read ``count`` registers with function code 3 or 4 from one unit."""
        block = BlockRead(function_code, address, count, ())
        return (await self.read_blocks(unit_id, [block]))[block.key]

    async def read_blocks(
        self, unit_id: int, blocks: Sequence[BlockRead]
    ) -> dict[tuple[int, int], list[int]]:
        """Read every block from one unit back to back, holding the bus meanwhile.

        Keeping the bus for one meter's blocks keeps its values close together in time.
        Returns ``{(function_code, address): words}``, the form :func:`decode` expects.
        """
        for block in blocks:
            if block.function_code not in (3, 4):
                raise MeterConfigError(
                    f"bus {self.name!r}: function code {block.function_code} cannot read "
                    "registers (use 3 or 4)"
                )
        async with self._lock:
            try:
                await self._ensure_connected()
                out: dict[tuple[int, int], list[int]] = {}
                for block in blocks:
                    out[block.key] = await self._request(unit_id, block)
            except ModbusError as exc:
                self._failed(exc)
                raise
            return out

    async def read_plan(
        self, unit_id: int, plan: ReadPlan, *, keep_going: bool = False
    ) -> PlanRead:
        """Read every block of ``plan`` from one unit, holding the bus meanwhile.

        A block refused with exception 2 or 3 is split (:meth:`ReadPlan.split`) and its
        halves are read at once. Any other failure raises, unless ``keep_going``: then the
        block is listed in :attr:`PlanRead.failures` and the next one is read (the probe
        reports every failing register). A connection failure always raises.
        """
        for block in plan.blocks:
            if block.function_code not in (3, 4):
                raise MeterConfigError(
                    f"bus {self.name!r}: function code {block.function_code} cannot read "
                    "registers (use 3 or 4)"
                )
        words: dict[tuple[int, int], list[int]] = {}
        failures: list[tuple[BlockRead, ModbusError]] = []
        splits: list[Split] = []
        async with self._lock:
            try:
                await self._ensure_connected()
                pending = list(plan.blocks)
                while pending:
                    block = pending.pop(0)
                    try:
                        words[block.key] = await self._request(unit_id, block)
                    except ModbusExceptionResponse as exc:
                        split = plan.split(block, exc.code)
                        if split is not None:
                            splits.append(split)
                            pending[0:0] = split.halves
                            continue
                        if not keep_going:
                            raise
                        failures.append((block, exc))
                    except (ModbusTimeout, ModbusFrameError) as exc:
                        if not keep_going:
                            raise
                        failures.append((block, exc))
            except ModbusError as exc:
                self._failed(exc)
                raise
        if failures:
            self._failed(failures[-1][1])
        return PlanRead(words, tuple(failures), tuple(splits))

    def _failed(self, exc: ModbusError) -> None:
        self.last_error = exc
        if not isinstance(exc, _NotConnectedYet):
            self._cause = exc

    async def close(self) -> None:
        """Close the connection; later reads fail with :class:`ModbusConnectionError`."""
        async with self._lock:
            self._closed = True
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- connection ---------------------------------------------------------------------

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        config = self.config
        # retries=0 and reconnect_delay=0: this class retries and reconnects itself, so
        # that each attempt's failure can be classified and logged once.
        if config.transport != "rtu":
            assert config.host is not None
            # RTU over TCP: a transparent RS-485-to-Ethernet converter passes RTU frames (unit
            # id and CRC, no MBAP header) between the TCP stream and the line.
            framer = FramerType.RTU if config.transport == "rtu-over-tcp" else FramerType.SOCKET
            return AsyncModbusTcpClient(
                config.host,
                framer=framer,
                port=config.port,
                name=f"edgegw-{self.name}",
                timeout=config.timeout,
                retries=0,
                reconnect_delay=0,
                trace_packet=self._trace_packet,
                trace_pdu=self._trace_pdu,
                trace_connect=self._trace_connect,
            )
        assert config.device is not None
        return AsyncModbusSerialClient(
            config.device,
            name=f"edgegw-{self.name}",
            baudrate=config.baudrate,
            bytesize=config.bytesize,
            parity=config.parity,
            stopbits=config.stopbits,
            timeout=config.timeout,
            retries=0,
            reconnect_delay=0,
            trace_packet=self._trace_packet,
            trace_pdu=self._trace_pdu,
            trace_connect=self._trace_connect,
        )

    async def _ensure_connected(self) -> None:
        if self._closed:
            raise ModbusConnectionError(f"bus {self.name!r} is closed")
        if self._client is not None and self._client.connected:
            return
        now = time.monotonic()
        if now < self._next_attempt:
            # The cause, never an earlier refusal: its text would nest one level per poll.
            last = f" (last error: {self._cause})" if self._cause else ""
            raise _NotConnectedYet(
                f"bus {self.name!r} ({self.endpoint}) is not connected; next attempt in "
                f"{self._next_attempt - now:.1f} s{last}"
            )
        if self._client is None:
            if self.config.transport == "rtu":
                self._check_serial_settings()
            self._client = self._make_client()
        try:
            connected = await self._client.connect()
        except (OSError, ValueError, termios.error) as exc:
            self._client = None
            self._backoff()
            if self.config.transport != "rtu":
                raise ModbusConnectionError(
                    f"bus {self.name!r} ({self.endpoint}): cannot connect: {exc}"
                ) from None
            raise self._refused_settings(exc) from None
        if connected:
            self._delay = 0.0
            self._next_attempt = 0.0
            if not self._connected_logged:
                log.info("bus %s: connected to %s", self.name, self.endpoint)
                self._connected_logged = True
                self._failing_logged = False
            return
        self._backoff()
        reason = _connect_failure(self.config)
        error = ModbusConnectionError(f"bus {self.name!r} ({self.endpoint}): {reason}")
        if not self._failing_logged:
            log.warning("bus %s: %s; retrying with backoff", self.name, error)
            self._failing_logged = True
            self._connected_logged = False
        raise error

    def _check_serial_settings(self) -> None:
        """Open the serial port once with the bus's settings, to refuse settings the port
        cannot do with a clear error (termios says EINVAL, e.g. parity with two stop bits on
        some adapters). pymodbus would raise the bare ``termios.error`` and, since it failed
        after locking the port, leave it locked until the process ends. Any other failure
        (no such device, busy) is left to the connect that follows, which names it."""
        config = self.config
        try:
            port = serial.Serial(
                config.device,
                baudrate=config.baudrate,
                bytesize=config.bytesize,
                parity=config.parity,
                stopbits=config.stopbits,
                timeout=0,
            )
        except (termios.error, ValueError) as exc:
            self._backoff()
            raise self._refused_settings(exc) from None
        except OSError:
            return
        port.close()

    def _refused_settings(self, exc: Exception) -> MeterConfigError:
        why = exc.args[1] if isinstance(exc, termios.error) and len(exc.args) == 2 else exc
        return MeterConfigError(
            f"bus {self.name!r} ({self.endpoint}): the serial port refuses these settings "
            f"({why}): it cannot do this combination of baud rate, parity and stop bits"
        )

    def _backoff(self) -> None:
        self._delay = min(self._max_delay, max(self._min_delay, 2 * self._delay))
        self._next_attempt = time.monotonic() + self._delay

    def _lost(self, why: str) -> None:
        """The connection broke: log it once, drop the client state, back off."""
        if self._client is not None:
            self._client.close()
        self._backoff()
        if self._connected_logged:
            log.warning("bus %s: connection to %s lost: %s", self.name, self.endpoint, why)
            self._connected_logged = False
            self._failing_logged = True

    # -- pymodbus trace hooks -------------------------------------------------------------

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._rx = data
        return data

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self._answers += 1
        return pdu

    def _trace_connect(self, connected: bool) -> None:
        if connected or not self._in_flight or self._client is None:
            return
        future: asyncio.Future[ModbusPDU] = self._client.ctx.response_future
        if not future.done():
            future.set_exception(_ConnectionDropped())

    # -- requests -------------------------------------------------------------------------

    async def _request(self, unit_id: int, block: BlockRead) -> list[int]:
        attempts = 1 + self.config.retries
        failure: ModbusError | None = None
        for _ in range(attempts):
            wait = self._last_end + self._gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await self._execute(unit_id, block)
            except (ModbusTimeout, ModbusFrameError) as exc:
                failure = exc
            finally:
                self._last_end = time.monotonic()
        assert failure is not None
        raise failure

    async def _execute(self, unit_id: int, block: BlockRead) -> list[int]:
        client = self._client
        if client is None or not client.connected:
            self._lost("not connected")
            raise ModbusConnectionError(f"bus {self.name!r} ({self.endpoint}): not connected")
        where = (
            f"unit {unit_id} FC{block.function_code} {block.address:#06x}+{block.count} "
            f"on bus {self.name!r}"
        )
        self._rx = b""
        self._answers = 0
        self._in_flight = True
        self.requests += 1
        try:
            if block.function_code == 3:
                response = await client.read_holding_registers(
                    block.address, count=block.count, device_id=unit_id
                )
            else:
                response = await client.read_input_registers(
                    block.address, count=block.count, device_id=unit_id
                )
        except _ConnectionDropped:
            self._lost("closed by the other end during a request")
            raise ModbusConnectionError(f"{where}: connection lost during the request") from None
        except ConnectionException as exc:
            self._lost(str(exc))
            raise ModbusConnectionError(f"{where}: not connected ({exc})") from None
        except ModbusIOException as exc:
            if not self.connected:  # pymodbus closes TCP after several unanswered requests
                self._lost("no answers")
            if self._answers:
                raise ModbusFrameError(f"{where}: invalid answer ({exc})") from None
            if self._rx:
                garbage = (
                    _describe_rtu_garbage(self._rx, unit_id)
                    if self.config.transport != "tcp"
                    else f"{len(self._rx)} bytes, no valid answer ({self._rx[:32].hex(' ')})"
                )
                raise ModbusFrameError(f"{where}: {garbage}") from None
            raise ModbusTimeout(f"{where}: no answer within {self.config.timeout:g} s") from None
        finally:
            self._in_flight = False
        answered = int(response.function_code) & 0x7F
        if answered != block.function_code:
            raise ModbusFrameError(
                f"{where}: the answer is for function code {answered} "
                f"({_FUNCTION_NAMES.get(answered, 'another function')}), not "
                f"{block.function_code} ({_FUNCTION_NAMES[block.function_code]}): rejected "
                "(a misconfigured Modbus gateway, or another master on the bus)"
            )
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = _EXCEPTION_NAMES.get(code, "unknown exception code")
            raise ModbusExceptionResponse(code, f"{where}: exception {code} ({name})")
        words = list(response.registers)
        if len(words) != block.count:
            raise ModbusFrameError(f"{where}: asked for {block.count} registers, got {len(words)}")
        return words


# --------------------------------------------------------------------------------------------
# Plausibility
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SanityLimits:
    """What a building meter can physically report; anything outside is a bad reading."""

    min_current_a: float = -0.1
    """Slightly below zero tolerates noise around 0 A; real negative currents are rejected."""
    max_current_a: float = 10_000.0
    min_voltage_v: float = 0.0
    """0 V is a lost phase, a real condition the controller must see."""
    max_voltage_v: float = 500.0
    max_frequency_hz: float = 100.0

    @property
    def max_power_w(self) -> float:
        """The most three phases at the highest voltage and current can carry."""
        return 3 * self.max_voltage_v * self.max_current_a


_CURRENTS: Final = (Quantity.CURRENT_L1, Quantity.CURRENT_L2, Quantity.CURRENT_L3)
_VOLTAGES: Final = (Quantity.VOLTAGE_L1, Quantity.VOLTAGE_L2, Quantity.VOLTAGE_L3)
_POWERS: Final = (Quantity.POWER_L1, Quantity.POWER_L2, Quantity.POWER_L3, Quantity.POWER)
_ENERGIES: Final = (Quantity.ENERGY_IMPORT, Quantity.ENERGY_EXPORT)


def implausible(reading: Reading, limits: SanityLimits | None = None) -> dict[Quantity, str]:
    """Values of ``reading`` no meter can report, each with the reason (empty: all fine)."""
    limits = limits or SanityLimits()
    problems: dict[Quantity, str] = {}
    for quantity, value in reading.values().items():
        if not math.isfinite(value):
            problems[quantity] = f"not a finite number ({value})"
        elif quantity in _CURRENTS and not (limits.min_current_a <= value <= limits.max_current_a):
            problems[quantity] = (
                f"{value:g} A is outside {limits.min_current_a:g}..{limits.max_current_a:g} A"
            )
        elif quantity in _VOLTAGES and not (limits.min_voltage_v <= value <= limits.max_voltage_v):
            problems[quantity] = (
                f"{value:g} V is outside {limits.min_voltage_v:g}..{limits.max_voltage_v:g} V"
            )
        elif quantity in _POWERS and abs(value) > limits.max_power_w:
            problems[quantity] = f"{value:g} W exceeds {limits.max_power_w:g} W"
        elif quantity in _ENERGIES and value < 0:
            problems[quantity] = f"{value:g} Wh: an energy counter cannot be negative"
        elif quantity is Quantity.FREQUENCY and not 0 <= value <= limits.max_frequency_hz:
            problems[quantity] = f"{value:g} Hz is outside 0..{limits.max_frequency_hz:g} Hz"
    return problems


def _should_move(reading: Reading) -> bool:
    """Whether a live meter's registers change between reads.

    Voltage and frequency jitter on any live grid, and a current or power above zero makes
    the energy counter advance. A meter offering none of them, with everything at zero, may
    legitimately repeat itself.
    """
    values = reading.values()
    if any(q in values for q in (*_VOLTAGES, Quantity.FREQUENCY)):
        return True
    return any(values.get(q, 0.0) != 0.0 for q in (*_CURRENTS, *_POWERS))


# --------------------------------------------------------------------------------------------
# Polling one meter
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeterSample:
    """A valid reading of one meter and how old it is (the poller's monotonic clock)."""

    meter: str
    reading: Reading
    at: float
    """When the meter's registers last changed to these values: a meter that keeps sending
    the same registers (while they should move) does not make its reading any newer."""
    failed_at: float | None = None
    """When a later read of this meter failed or was rejected (None: none since). The
    reading is then only the last valid one: good for a cut, not for a raise."""


class HealthState(StrEnum):
    UNKNOWN = "unknown"
    """Not read yet."""
    OK = "ok"
    """The last read gave a valid reading."""
    STALE = "stale"
    """The meter answers, but its registers stopped moving: the values are old."""
    ERROR = "error"
    """The last read failed or its values were rejected."""


@dataclass(frozen=True, slots=True)
class MeterHealth:
    """How a meter is doing, for the controller, the TUI and the logs."""

    state: HealthState = HealthState.UNKNOWN
    last_error: str | None = None
    """Why the last read failed (None once a read succeeds again; the log keeps the story)."""
    error_kind: str | None = None
    """``timeout``, ``exception``, ``frame``, ``connection``, ``config``, ``bad_reading``,
    ``frozen`` or ``internal`` (a bug, logged with its traceback)."""
    consecutive_failures: int = 0
    last_good_at: float | None = None


SampleListener = Callable[[MeterSample], None]
HealthListener = Callable[[MeterHealth], None]


class MeterPoller:
    """Reads one meter every ``poll_interval`` and passes on only readings worth acting on.

    A poll reads the blocks :func:`plan_reads` planned (one request for an SDM630), decodes
    them strictly and checks them (:func:`implausible`, frozen registers). A valid reading
    becomes :attr:`latest` and goes to every listener; a rejected one changes only
    :attr:`health`. :meth:`run` polls until cancelled; :meth:`poll_once` is one poll.

    Identical raw registers (while they should move, see :func:`_should_move`) leave the
    sample's :attr:`~MeterSample.at` where it was, when they were first read: the values are
    as old as their last change, so the controller falls back when a frozen meter's data is
    ``meter_lost_after`` old, as when the meter does not answer. After ``frozen_after``
    seconds of them the meter is stale (reads rejected); ``0`` disables the check. An answer
    whose function code is not the request's is a failed read (:class:`ModbusFrameError`).
    """

    def __init__(
        self,
        config: MeterConfig,
        profile: MeterProfile,
        bus: ModbusBus,
        *,
        clock: Clock = time.monotonic,
        frozen_after: float = DEFAULT_FROZEN_AFTER,
        limits: SanityLimits | None = None,
        quantities: Iterable[Quantity] | None = None,
    ) -> None:
        if frozen_after < 0:
            raise ValueError("frozen_after must be >= 0")
        self.config = config
        self.profile = profile
        self.bus = bus
        self._clock = clock
        self._limits = limits or SanityLimits()
        self._quantities = tuple(quantities) if quantities is not None else profile.quantities
        self.plan = ReadPlan(profile, self._quantities)
        """The requests a poll sends; refused blocks are split and the split is kept."""
        self.frozen_after = frozen_after
        """Seconds of identical registers that make the meter stale (0: never)."""
        self._listeners: list[SampleListener] = []
        self._health_listeners: list[HealthListener] = []
        self._last_image: tuple[tuple[int, ...], ...] | None = None
        self._same = 0
        self._image_since = 0.0
        """When the current register image was first read (clock)."""
        self.latest: MeterSample | None = None
        """The last valid reading; never one that was rejected."""
        self.health = MeterHealth()
        self.last_cycle_s: float | None = None
        """Duration of the last read, bus wait included (s)."""
        self.reads_ok = 0
        self.reads_failed = 0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def blocks(self) -> tuple[BlockRead, ...]:
        """The requests a poll sends now (see :attr:`plan`)."""
        return self.plan.blocks

    def __repr__(self) -> str:
        return (
            f"MeterPoller({self.name!r}, {self.profile.id}, unit {self.config.unit_id} "
            f"on {self.bus.name!r})"
        )

    def add_listener(self, callback: SampleListener) -> None:
        """Call ``callback`` with every valid reading, right after :attr:`latest` changes."""
        self._listeners.append(callback)

    def remove_listener(self, callback: SampleListener) -> None:
        self._listeners.remove(callback)

    def add_health_listener(self, callback: HealthListener) -> None:
        """Call ``callback`` when :attr:`health` changes state (ok, stale, error), or the
        kind of failure changes while failing (e.g. timeouts turn into refused connects)."""
        self._health_listeners.append(callback)

    def remove_health_listener(self, callback: HealthListener) -> None:
        self._health_listeners.remove(callback)

    async def run(self) -> None:
        """Poll every ``poll_interval`` seconds until cancelled; a slow read skips ticks."""
        loop = asyncio.get_running_loop()
        interval = self.config.poll_interval
        due = loop.time()
        while True:
            try:
                await self.poll_once()
            except Exception as exc:  # a bug must not end polling: the meter would look lost
                if self.health.error_kind != "internal":
                    log.exception("meter %s: unexpected error while polling", self.name)
                self._fail(HealthState.ERROR, "internal", f"meter {self.name!r}: {exc!r}")
            due += interval
            now = loop.time()
            due = max(due, now)  # a read longer than the interval skips ticks, no burst
            await asyncio.sleep(due - now)

    async def poll_once(self) -> MeterSample | None:
        """Read, check and publish once; the sample, or ``None`` if the read was rejected."""
        started = self._clock()
        try:
            read = await self.bus.read_plan(self.config.unit_id, self.plan)
        except ModbusError as exc:
            self.last_cycle_s = self._clock() - started
            self._fail(HealthState.ERROR, exc.kind, str(exc))
            return None
        blocks = read.words
        for split in read.splits:
            log.warning("meter %s: %s", self.name, split)
        if read.splits:
            log.warning("meter %s: %s", self.name, self.plan.advice())
        now = self._clock()
        self.last_cycle_s = now - started
        try:
            reading = self._check(blocks, now)
        except BadReading as exc:
            self._fail(HealthState.ERROR, "bad_reading", f"meter {self.name!r}: {exc}")
            return None
        except FrozenReading as exc:
            self._fail(HealthState.STALE, "frozen", str(exc))
            return None
        self.reads_ok += 1
        sample = MeterSample(self.name, reading, self._image_since)
        if sample == self.latest:  # the same registers again: nothing new to tell
            self._healthy(now)
            return sample
        self.latest = sample
        self._healthy(now)
        for listener in list(self._listeners):
            try:
                listener(sample)
            except Exception:
                log.exception("meter %s: listener %r failed", self.name, listener)
        return sample

    def _check(self, blocks: Mapping[tuple[int, int], Sequence[int]], now: float) -> Reading:
        reading = decode(self.profile, blocks, self._quantities, strict=True)
        problems = implausible(reading, self._limits)
        if problems:
            raise BadReading(problems, partial=reading, meter=self.profile.id)
        image = tuple(tuple(blocks[block.key]) for block in self.blocks)
        if image == self._last_image and _should_move(reading):
            self._same += 1
        else:
            self._same = 1
            self._image_since = now
        self._last_image = image
        unchanged = now - self._image_since
        if self.frozen_after and self._same > 1 and unchanged >= self.frozen_after:
            raise FrozenReading(
                f"meter {self.name!r}: the same registers for {unchanged:.1f} s "
                f"({self._same} reads) although its values must move; the meter or its "
                "gateway is serving stale data"
            )
        return reading

    def _healthy(self, now: float) -> None:
        # A recovered meter carries no error: "ok" with the old failure's text misleads.
        self._set_health(MeterHealth(HealthState.OK, None, None, 0, now))

    def _fail(self, state: HealthState, kind: str, message: str) -> None:
        self.reads_failed += 1
        latest = self.latest
        if latest is not None and latest.failed_at is None:
            self.latest = dataclasses.replace(latest, failed_at=self._clock())
        self._set_health(
            MeterHealth(
                state,
                message,
                kind,
                self.health.consecutive_failures + 1,
                self.health.last_good_at,
            )
        )

    def _set_health(self, health: MeterHealth) -> None:
        before = self.health
        self.health = health
        changed = before.state != health.state or (
            health.state is not HealthState.OK and before.error_kind != health.error_kind
        )
        if not changed:
            return
        if health.state is HealthState.OK:
            again = "reading" if before.state is HealthState.UNKNOWN else "reading again"
            log.info("meter %s: %s (%s)", self.name, again, self.profile.name)
        else:
            log.warning("meter %s: %s: %s", self.name, health.state.value, health.last_error)
        for listener in list(self._health_listeners):
            try:
                listener(health)
            except Exception:
                log.exception("meter %s: health listener %r failed", self.name, listener)


# --------------------------------------------------------------------------------------------
# The service: every bus and meter of a configuration
# --------------------------------------------------------------------------------------------


def find_profile(
    profile_id: str,
    directory: Path | None = None,
    *,
    allow_template: bool = True,
    catalogue: HardwareCatalogue | None = None,
) -> MeterProfile:
    """The meter profile ``profile_id`` from ``directory`` alone if given, else from
    ``catalogue`` (default: the shipped profiles and the default site folder); a missing or
    broken file names what exists.

    ``allow_template=False`` is for a meter the site really reads: a ``template = true``
    file (``generic.toml``) holds example registers, and reading a real meter through them
    would give load capping invented currents, so it raises :class:`TemplateProfileError`
    saying what to fill in. Tools that only show or serve a profile may load templates.
    """
    if directory is not None:
        catalogue = HardwareCatalogue.of_folder("meters", directory)
    try:
        return (catalogue or HardwareCatalogue()).meter_profile(
            profile_id, allow_template=allow_template
        )
    except CatalogueTemplateError as exc:
        raise TemplateProfileError(profile_id, str(exc)) from None
    except HardwareError as exc:
        raise MeterConfigError(str(exc)) from None


class TemplateProfileError(MeterConfigError):
    """A configured meter names a template profile (``template = true``), not a real meter;
    the message says where to copy it and what to fill in."""

    def __init__(self, profile_id: str, message: str) -> None:
        self.profile_id = profile_id
        super().__init__(message)


class MeterService:
    """The site's buses and meters, built from a :class:`~edgegw.config.Config`.

    Construction validates everything (missing bus or profile, duplicate names, a unit id
    used twice on one bus) and raises :class:`MeterConfigError` naming the config key;
    nothing is opened until :meth:`start`. Profiles come from ``profiles_dir`` alone if given,
    else from the site's hardware catalogue (its ``[daemon] hardware_dir``, then shipped).
    ``frozen_after`` (s) defaults to the site's ``meter_lost_after``: a frozen meter is called
    stale when load capping falls back for it.
    """

    def __init__(
        self,
        config: Config,
        *,
        profiles_dir: Path | None = None,
        clock: Clock = time.monotonic,
        frozen_after: float | None = None,
        reconnect_min_delay: float = 0.5,
        reconnect_max_delay: float = 10.0,
    ) -> None:
        self._owner = TaskOwner("meters")
        self._started = False
        if frozen_after is None:  # as soon as capping would fall back for a silent meter
            frozen_after = (
                config.site.meter_lost_after if config.site is not None else DEFAULT_FROZEN_AFTER
            )
        self.buses: dict[str, ModbusBus] = {}
        self.pollers: dict[str, MeterPoller] = {}
        problems: list[str] = []
        profiles: dict[str, MeterProfile] = {}
        catalogue = None if profiles_dir is not None else HardwareCatalogue.for_config(config)
        units: dict[tuple[str, int], int] = {}
        names: dict[str, int] = {}
        for i, meter in enumerate(config.meters):
            key = f"meters[{i}]"
            if meter.name in names:
                problems.append(
                    f"{key}.name: {meter.name!r} is already used by meters[{names[meter.name]}]"
                )
                continue
            names[meter.name] = i
            bus_config = config.buses.get(meter.bus)
            if bus_config is None:
                defined = ", ".join(sorted(config.buses)) or "none"
                problems.append(f"{key}.bus: no [buses.{meter.bus}] section (defined: {defined})")
                continue
            if bus_config.transport != "tcp" and meter.unit_id == 0:
                problems.append(f"{key}.unit_id: 0 is the broadcast address on RTU, use 1..247")
            unit = (meter.bus, meter.unit_id)
            if unit in units:
                problems.append(
                    f"{key}.unit_id: unit {meter.unit_id} on bus {meter.bus!r} is already "
                    f"meters[{units[unit]}]"
                )
            units.setdefault(unit, i)
            if meter.profile not in profiles:
                try:
                    profiles[meter.profile] = find_profile(
                        meter.profile, profiles_dir, allow_template=False, catalogue=catalogue
                    )
                except MeterConfigError as exc:
                    problems.append(f"{key}.profile: {exc}")
                    continue
            bus = self.buses.get(meter.bus)
            if bus is None:
                bus = ModbusBus(
                    bus_config,
                    name=meter.bus,
                    reconnect_min_delay=reconnect_min_delay,
                    reconnect_max_delay=reconnect_max_delay,
                )
                self.buses[meter.bus] = bus
            self.pollers[meter.name] = MeterPoller(
                meter, profiles[meter.profile], bus, clock=clock, frozen_after=frozen_after
            )
        if problems:
            raise MeterConfigError("\n".join(problems))

    @property
    def site_meter(self) -> MeterPoller | None:
        """The meter load capping follows (role 'site'), if one is configured."""
        for poller in self.pollers.values():
            if poller.config.role == "site":
                return poller
        return None

    def start(self) -> None:
        """Start polling every meter (each in its own named task); once only."""
        if self._started:
            return
        self._started = True
        for poller in self.pollers.values():
            self._owner.spawn(poller.run(), f"meter:{poller.name}")
            log.info(
                "meter %s: %s, unit %d on bus %s (%s), every %g s",
                poller.name,
                poller.profile.name,
                poller.config.unit_id,
                poller.bus.name,
                poller.bus.endpoint,
                poller.config.poll_interval,
            )

    async def close(self) -> None:
        """Stop polling and close every bus."""
        await self._owner.close()
        for bus in self.buses.values():
            await bus.close()


# --------------------------------------------------------------------------------------------
# One-shot helpers for the installer's CLI
# --------------------------------------------------------------------------------------------


async def probe(bus_config: BusConfig, profile: MeterProfile, unit_id: int) -> Reading:
    """Read every quantity of ``profile`` once from one meter, with the poller's requests.

    Unlike the poller this does not reject anything: a value that failed decoding is
    ``None`` with the reason in :attr:`Reading.invalid`, so the installer sees it all.
    Raises a :class:`ModbusError` if the meter cannot be read.
    """
    bus = ModbusBus(bus_config, name="probe", reconnect_min_delay=0, reconnect_max_delay=0)
    try:
        read = await bus.read_plan(unit_id, ReadPlan(profile))
    finally:
        await bus.close()
    reading = decode(profile, read.words, strict=False)
    problems = implausible(reading)
    if not problems:
        return reading
    values = {q: v for q, v in reading.values().items() if q not in problems}
    return Reading.from_values(values, invalid={**reading.invalid, **problems})


async def scan(bus_config: BusConfig, unit_ids: Iterable[int], profile: MeterProfile) -> list[int]:
    """Which of ``unit_ids`` answer on the bus, tried one by one without retries.

    A unit answers if it returns registers or a Modbus exception of its own (it is there,
    the map may be wrong); a TCP gateway's "no path" or "target did not respond" means it
    is not. The first register of the profile is read, whole.
    """
    first = profile.quantities[0]
    block = plan_reads(profile, [first])[0]
    bus = ModbusBus(
        bus_config.model_copy(update={"retries": 0}),
        name="scan",
        reconnect_min_delay=0,
        reconnect_max_delay=0,
    )
    found: list[int] = []
    try:
        for unit_id in unit_ids:
            try:
                await bus.read_blocks(unit_id, [block])
            except ModbusExceptionResponse as exc:
                if exc.code not in _GATEWAY_NO_TARGET:
                    found.append(unit_id)
            except (ModbusTimeout, ModbusFrameError) as exc:
                log.debug("scan: unit %d: %s", unit_id, exc)
            else:
                found.append(unit_id)
    finally:
        await bus.close()
    return found
