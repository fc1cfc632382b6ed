"""One physical Modbus bus (an RS-485 line or a TCP gateway): one pymodbus client, every request
serialised behind a lock (two in flight garble each other), the RTU silent interval kept,
connected lazily and reconnected with a backoff.

pymodbus is imported when a bus makes its client (or reads a garbled RTU answer), not with this
module: the daemon imports it on every site, and ~2 MiB of its memory is pymodbus, which a site
without a meter or a Modbus limit never uses.
"""

from __future__ import annotations

import asyncio
import logging
import termios
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import serial

from edgegw.config import BusConfig
from edgegw.energy.modbuserrors import (
    _EXCEPTION_NAMES,
    _FUNCTION_NAMES,
    MeterConfigError,
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusTimeout,
    _ConnectionDropped,
    _NotConnectedYet,
)
from edgegw.energy.readplan import PlanRead, ReadPlan, Split
from edgegw.energy.registers import BlockRead

if TYPE_CHECKING:
    from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
    from pymodbus.pdu import ModbusPDU

log = logging.getLogger("edgegw.energy.meters")


Clock = Callable[[], float]


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
    from pymodbus.framer import FramerRTU  # noqa: PLC0415 (see the module docstring)

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
        """Read ``count`` registers (function code 3 or 4) or bits (1: coils, 2: discrete
        inputs; each 0 or 1, a relay contact's state) from one unit."""
        if function_code not in _FUNCTION_NAMES:
            raise MeterConfigError(
                f"bus {self.name!r}: function code {function_code} reads nothing (use 1 or 2 "
                "for coils or discrete inputs, 3 or 4 for registers)"
            )
        block = BlockRead(function_code, address, count, ())
        return (await self._read_locked(unit_id, [block]))[block.key]

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
        return await self._read_locked(unit_id, blocks)

    async def _read_locked(
        self, unit_id: int, blocks: Sequence[BlockRead]
    ) -> dict[tuple[int, int], list[int]]:
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
        from pymodbus import FramerType  # noqa: PLC0415 (see the module docstring)
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient  # noqa: PLC0415

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
        # loaded by _make_client (see the module docstring): a dictionary look-up here
        from pymodbus.exceptions import ConnectionException, ModbusIOException  # noqa: PLC0415

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
            if block.function_code == 1:
                response = await client.read_coils(
                    block.address, count=block.count, device_id=unit_id
                )
            elif block.function_code == 2:
                response = await client.read_discrete_inputs(
                    block.address, count=block.count, device_id=unit_id
                )
            elif block.function_code == 3:
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
        if block.function_code in (1, 2):
            # Bits come in whole bytes, padded with zeros: only the first ``count`` are asked.
            bits = list(response.bits)
            if len(bits) < block.count:
                raise ModbusFrameError(f"{where}: asked for {block.count} bits, got {len(bits)}")
            return [int(bit) for bit in bits[: block.count]]
        words = list(response.registers)
        if len(words) != block.count:
            raise ModbusFrameError(f"{where}: asked for {block.count} registers, got {len(words)}")
        return words
