"""A simulated electricity meter: a real pymodbus server serving a profile's registers.

The gateway's meter code, the demo and the closed-loop load-capping test need a meter that
speaks real Modbus over a real socket or serial line, holds the values a test sets, and can
fail in the ways real meters fail: stop answering, answer with an exception, send NaN,
garble its frames (CRC errors on RS-485), hang with frozen registers, or vanish and come
back on the same port.

:class:`SimMeter` is that meter. It serves any profile from ``hardware/meters`` (default:
the Eastron SDM630) through :func:`~edgegw.energy.registers.encode_image`, so the words on
the wire are exactly what the real meter would send for the values set. It listens on TCP
(port 0 picks a free port, kept across :meth:`SimMeter.stop` / :meth:`SimMeter.start`) or
on a serial device for RTU; :func:`virtual_serial_pair` makes a pty pair with ``socat`` for
RTU without hardware. Several meters can share one bus: :meth:`SimMeter.add_unit` adds
another unit id to the same server, as on an RS-485 line.

Like a real meter it refuses a request for more registers than it takes with exception 3
(illegal data value): ``max_read_registers``, by default the profile's. A test that checks a
profile against an independent source passes ``image=``: registers written by hand from the
vendor's document, served as they are instead of the profile's encoding.

A live meter's registers move like a real one's: the energy counters advance with the power
(per the injected clock) and the voltages wobble by 0.1 V from read to read, so the
gateway's frozen-register check stays quiet until :meth:`SimUnit.freeze` is called. Pass
``live=False`` for exact, unchanging values.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import shutil
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edgegw.energy.meters import find_profile
from edgegw.energy.registers import (
    MeterProfile,
    Quantity,
    Reading,
    encode_image,
    plan_reads,
    value_to_words,
)
from edgegw.sim.lifecycle import ServedSim

__all__ = ["SimMeter", "SimUnit", "default_reading", "virtual_serial_pair"]

log = logging.getLogger(__name__)

DEFAULT_PROFILE = "eastron-sdm630"

_WOBBLE_V = (0.0, 0.1, 0.0, -0.1)
"""Voltage offsets cycled through on successive reads of a live meter."""

RequestListener = Callable[[int, int, int, int], None]

_NAN32 = struct.unpack(">HH", struct.pack(">f", math.nan))
_NAN64 = struct.unpack(">HHHH", struct.pack(">d", math.nan))


def default_reading() -> Reading:
    """An idle three-phase site: 230 V, 0 A, 50 Hz, 1 MWh imported so far."""
    return Reading(
        voltage_l1_v=230.0,
        voltage_l2_v=230.0,
        voltage_l3_v=230.0,
        current_l1_a=0.0,
        current_l2_a=0.0,
        current_l3_a=0.0,
        power_l1_w=0.0,
        power_l2_w=0.0,
        power_l3_w=0.0,
        power_w=0.0,
        energy_import_wh=1_000_000.0,
        energy_export_wh=0.0,
        frequency_hz=50.0,
    )


class SimUnit:
    """One simulated meter (one unit id): its values and the faults it shows.

    The setters change what the next read returns. Faults: :meth:`freeze` (keep serving the
    registers of this moment), :meth:`serve_nan`, :meth:`fail_with` (a Modbus exception),
    :attr:`silent` (no answer at all), :attr:`answer_function_code` (an answer for another
    function code) and :attr:`corrupt_crc` (RTU only: the answer's CRC is wrong).
    :meth:`clear_faults` ends them all.
    """

    def __init__(
        self,
        profile: MeterProfile,
        unit_id: int = 1,
        reading: Reading | None = None,
        *,
        live: bool = True,
        clock: Callable[[], float] = time.monotonic,
        rtu: bool = True,
        image: Mapping[int, Mapping[int, int]] | None = None,
        max_read_registers: int | None = None,
    ) -> None:
        self.profile = profile
        self.unit_id = unit_id
        self._fixed_image = (
            None if image is None else {fc: dict(page) for fc, page in image.items()}
        )
        self.max_read_registers = (
            profile.modbus.max_read_registers if max_read_registers is None else max_read_registers
        )
        """Largest request answered; a longer one gets exception 3, as from a real meter."""
        self.undefined_registers: set[int] = set()
        """Addresses this meter does not define: a request covering one gets exception 2
        (illegal data address), as some meter variants answer for a counter they lack."""
        self._rtu = rtu
        self.live = live
        self._clock = clock
        self._reading = reading if reading is not None else default_reading()
        self._since = clock()
        self._wobble = 0
        self._frozen: dict[int, dict[int, int]] | None = None
        self._nan: frozenset[Quantity] = frozenset()
        self.exception_code: int | None = None
        self.silent = False
        """Do not answer (the request times out)."""
        self.answer_function_code: int | None = None
        """Answer register reads as if for this function code (3 or 4) whatever was asked,
        with the registers asked for: a misconfigured Modbus gateway does that."""
        self._corrupt_crc = False
        self.reads = 0
        """Read requests this unit answered or refused."""

    @property
    def corrupt_crc(self) -> bool:
        """RTU only: send answers with a wrong CRC (as a noisy RS-485 line does)."""
        return self._corrupt_crc

    @corrupt_crc.setter
    def corrupt_crc(self, value: bool) -> None:
        if value and not self._rtu:
            raise ValueError("corrupt_crc needs RTU: Modbus TCP frames carry no CRC")
        self._corrupt_crc = value

    # -- values ---------------------------------------------------------------------------

    @property
    def reading(self) -> Reading:
        """The values the meter holds now (before wobble and faults)."""
        self._advance()
        return self._reading

    def set_reading(self, reading: Reading) -> None:
        self._advance()
        self._reading = reading

    def update(self, **values: float | None) -> None:
        """Change some fields of the reading, by :class:`Reading` field name."""
        self._advance()
        changes: dict[str, Any] = dict(values)
        self._reading = dataclasses.replace(self._reading, **changes)

    def set_currents(self, l1: float, l2: float, l3: float) -> None:
        """Set the phase currents; phase and total power follow at unity power factor.

        Call :meth:`set_power` afterwards for another power (export, reactive loads).
        """
        self._advance()
        volts = [v if v is not None else 230.0 for v in self._reading.voltages_v]
        powers = [round(v * i, 3) for v, i in zip(volts, (l1, l2, l3), strict=True)]
        self._reading = dataclasses.replace(
            self._reading,
            current_l1_a=l1,
            current_l2_a=l2,
            current_l3_a=l3,
            power_l1_w=powers[0],
            power_l2_w=powers[1],
            power_l3_w=powers[2],
            power_w=round(sum(powers), 3),
        )

    def set_voltages(self, l1: float, l2: float, l3: float) -> None:
        self.update(voltage_l1_v=l1, voltage_l2_v=l2, voltage_l3_v=l3)

    def set_power(
        self, total_w: float, per_phase_w: tuple[float, float, float] | None = None
    ) -> None:
        """Set the active power (import positive); per phase defaults to a third each."""
        phases = per_phase_w if per_phase_w is not None else (total_w / 3,) * 3
        self.update(
            power_w=total_w, power_l1_w=phases[0], power_l2_w=phases[1], power_l3_w=phases[2]
        )

    def set_energy(self, import_wh: float | None = None, export_wh: float | None = None) -> None:
        """Set the energy counters (Wh); ``None`` leaves a counter as it is."""
        changes: dict[str, float] = {}
        if import_wh is not None:
            changes["energy_import_wh"] = import_wh
        if export_wh is not None:
            changes["energy_export_wh"] = export_wh
        self.update(**changes)

    def set_frequency(self, hz: float) -> None:
        self.update(frequency_hz=hz)

    def _advance(self) -> None:
        """Let the energy counters run with the power since the last look (live meters)."""
        now = self._clock()
        elapsed, self._since = now - self._since, now
        if not self.live or elapsed <= 0:
            return
        power = self._reading.power_w or 0.0
        if power > 0 and self._reading.energy_import_wh is not None:
            self._reading = dataclasses.replace(
                self._reading,
                energy_import_wh=self._reading.energy_import_wh + power * elapsed / 3600,
            )
        elif power < 0 and self._reading.energy_export_wh is not None:
            self._reading = dataclasses.replace(
                self._reading,
                energy_export_wh=self._reading.energy_export_wh - power * elapsed / 3600,
            )

    # -- faults ---------------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def freeze(self) -> None:
        """Keep serving exactly the registers of this moment, whatever is set later."""
        self._frozen = self._compose(step=True)  # the next live read differs from it

    def unfreeze(self) -> None:
        self._frozen = None

    def serve_nan(self, *quantities: Quantity) -> None:
        """Serve garbage for ``quantities`` (all if none given) until :meth:`clear_faults`.

        Float registers hold NaN; integer ones their "not available" marker, or all ones.
        """
        self._nan = frozenset(quantities or self.profile.quantities)

    def fail_with(self, code: int | None) -> None:
        """Answer every read with Modbus exception ``code`` (2: illegal data address...)."""
        self.exception_code = None if code is None else int(ExcCodes(code))

    def clear_faults(self) -> None:
        self._frozen = None
        self._nan = frozenset()
        self.exception_code = None
        self.silent = False
        self.answer_function_code = None
        self._corrupt_crc = False

    # -- registers ------------------------------------------------------------------------

    def image(self, *, step: bool = True) -> dict[int, dict[int, int]]:
        """What a read returns now: ``{function_code: {address: word}}``; with ``step``,
        advances a live meter by one read (voltage wobble)."""
        if self._frozen is not None:
            return self._frozen
        if self._fixed_image is not None:
            return self._fixed_image
        return self._compose(step=step)

    def _steps(self, function_code: int, address: int, count: int) -> bool:
        """Whether a request is a new read of the meter: it covers the first voltage
        register (a gateway reads that once per poll, however many requests a poll takes),
        or the profile has none."""
        register = self.profile.registers.get(Quantity.VOLTAGE_L1)
        if register is None:
            return True
        fc = register.function_code or self.profile.modbus.function_code
        return fc == function_code and address <= register.address < address + count

    def _compose(self, *, step: bool = False) -> dict[int, dict[int, int]]:
        reading = self.reading
        if self.live:
            offset = _WOBBLE_V[self._wobble % len(_WOBBLE_V)]
            if step:
                self._wobble += 1
            wobbled: dict[str, Any] = {
                q.field_name: round(v + offset, 3)
                for q in (Quantity.VOLTAGE_L1, Quantity.VOLTAGE_L2, Quantity.VOLTAGE_L3)
                if (v := reading.value(q)) is not None and v > 0
            }
            reading = dataclasses.replace(reading, **wobbled)
        image = encode_image(self.profile, reading)
        for quantity in self._nan:
            self._garble(image, quantity)
        return image

    def _garble(self, image: dict[int, dict[int, int]], quantity: Quantity) -> None:
        register = self.profile.registers[quantity]
        fc = register.function_code or self.profile.modbus.function_code
        if register.type == "float32":
            words: Iterable[int] = _NAN32
        elif register.type == "float64":
            words = _NAN64
        elif register.not_available:
            words = value_to_words(
                sorted(register.not_available)[0],
                register.type,
                register.word_order or self.profile.modbus.word_order,
                register.byte_order or self.profile.modbus.byte_order,
            )
        else:
            words = [0xFFFF] * register.words
        page = image.setdefault(fc, {})
        for i, word in enumerate(words):
            page[register.address + i] = word

    def _spans(self) -> dict[int, tuple[int, int]]:
        """Per function code, the address range (start, end) the gateway may read."""
        spans: dict[int, tuple[int, int]] = {}
        if self._fixed_image is not None:
            for fc, page in self._fixed_image.items():
                if page:
                    spans[fc] = (min(page), max(page) + 1)
            return spans
        for block in plan_reads(self.profile):
            start, end = spans.get(block.function_code, (block.address, block.end))
            spans[block.function_code] = (min(start, block.address), max(end, block.end))
        return spans


class SimMeter(SimUnit, ServedSim):
    """A simulated meter served by a real pymodbus server, on TCP or on a serial device.

    It is itself the first unit (``unit_id``, default 1); :meth:`add_unit` puts more meters
    on the same bus before :meth:`start`. Requests for other unit ids get exception 11
    ("gateway target device failed to respond") on TCP, as from a Modbus gateway, and no
    answer on RTU. ``response_delay`` adds a meter's turnaround time to every answer.
    """

    def __init__(
        self,
        profile: MeterProfile | str | None = None,
        *,
        unit_id: int = 1,
        reading: Reading | None = None,
        transport: Literal["tcp", "rtu", "rtu-over-tcp"] = "tcp",
        host: str = "127.0.0.1",
        port: int = 0,
        device: str | Path | None = None,
        baudrate: int = 9600,
        parity: Literal["N", "E", "O"] = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        response_delay: float = 0.0,
        live: bool = True,
        clock: Callable[[], float] = time.monotonic,
        profiles_dir: Path | None = None,
        image: Mapping[int, Mapping[int, int]] | None = None,
        max_read_registers: int | None = None,
        answers_every_unit: bool = False,
    ) -> None:
        if isinstance(profile, MeterProfile):
            resolved = profile
        else:
            resolved = find_profile(profile or DEFAULT_PROFILE, profiles_dir)
        super().__init__(
            resolved,
            unit_id,
            reading,
            live=live,
            clock=clock,
            rtu=transport != "tcp",
            image=image,
            max_read_registers=max_read_registers,
        )
        if transport == "rtu" and device is None:
            raise ValueError("an RTU SimMeter needs device= (see virtual_serial_pair)")
        self.transport = transport
        self.host = host
        self._port = port
        self.device = None if device is None else str(device)
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize
        self.response_delay = response_delay
        self._live_default = live
        self._clock_default = clock
        self._profiles_dir = profiles_dir
        self._units: dict[int, SimUnit] = {unit_id: self}
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._stopping = asyncio.Event()
        self.requests = 0
        """Read requests served (all units)."""
        self.in_flight = 0
        self.max_in_flight = 0
        """Most requests ever handled at the same time; 1 on a correctly shared bus."""
        self._request_listeners: list[RequestListener] = []
        self.answers_every_unit = answers_every_unit
        """TCP: answer a request for any unit id as this meter (many Modbus TCP meters ignore
        the unit id) instead of exception 11."""

    @property
    def units(self) -> Mapping[int, SimUnit]:
        return self._units

    def add_unit(
        self,
        unit_id: int,
        profile: MeterProfile | str | None = None,
        reading: Reading | None = None,
        *,
        image: Mapping[int, Mapping[int, int]] | None = None,
        max_read_registers: int | None = None,
    ) -> SimUnit:
        """Put another meter on this bus (before :meth:`start`)."""
        if self._server is not None:
            raise RuntimeError("add units before start()")
        if unit_id in self._units:
            raise ValueError(f"unit {unit_id} is already on this bus")
        if isinstance(profile, MeterProfile):
            resolved = profile
        elif profile is None:
            resolved = self.profile
        else:
            resolved = find_profile(profile, self._profiles_dir)
        unit = SimUnit(
            resolved,
            unit_id,
            reading,
            live=self._live_default,
            clock=self._clock_default,
            rtu=self.transport != "tcp",
            image=image,
            max_read_registers=max_read_registers,
        )
        self._units[unit_id] = unit
        return unit

    def add_request_listener(self, callback: RequestListener) -> None:
        """Call ``callback(unit_id, function_code, address, count)`` as each read arrives.

        Lets a test act at the exact moment a request is being served (e.g. stop the
        meter mid-request) without sleeping.
        """
        self._request_listeners.append(callback)

    @property
    def port(self) -> int:
        """The TCP port (chosen at the first start when 0 was given)."""
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Start serving (again on the same port or device after :meth:`stop`)."""
        if self._server is not None:
            return
        self._stopping = asyncio.Event()
        devices = [self._device(unit) for unit in self._units.values()]
        if 0 not in self._units and self.answers_every_unit:
            devices.append(self._device(self, device_id=0))  # pymodbus: 0 catches every id
        elif 0 not in self._units:
            # Catch-all for unit ids nobody has: its answer is replaced in _trace_pdu.
            devices.append(SimDevice(0, simdata=[SimData(0, datatype=DataType.INVALID)]))
        server: ModbusTcpServer | ModbusSerialServer
        if self.transport != "rtu":
            server = ModbusTcpServer(
                devices,
                # RTU over TCP: a transparent RS-485-to-Ethernet converter's RTU frames.
                framer=FramerType.RTU if self.transport == "rtu-over-tcp" else FramerType.SOCKET,
                address=(self.host, self._port),
                trace_packet=self._trace_packet,
                trace_pdu=self._trace_pdu,
            )
        else:
            assert self.device is not None
            server = ModbusSerialServer(
                devices,
                port=self.device,
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
                bytesize=self.bytesize,
                trace_packet=self._trace_packet,
                trace_pdu=self._trace_pdu,
            )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            where = f"{self.host}:{self._port}" if self.transport != "rtu" else self.device
            raise OSError(f"simulated meter cannot listen on {where}: {exc}") from None
        if self.transport != "rtu":
            listener = cast(asyncio.Server, server.transport)
            self._port = int(listener.sockets[0].getsockname()[1])
        self._server = server
        log.debug("simulated meter serving on %s", self.address)

    async def stop(self) -> None:
        """Stop serving and drop every connection (the meter is gone until :meth:`start`)."""
        server, self._server = self._server, None
        self._stopping.set()
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]

    @property
    def address(self) -> str:
        """``host:port`` for TCP, the device path for RTU."""
        return f"{self.host}:{self._port}" if self.transport != "rtu" else str(self.device)

    # -- pymodbus plumbing ----------------------------------------------------------------

    def _device(self, unit: SimUnit, device_id: int | None = None) -> SimDevice:
        spans = unit._spans()
        blocks: list[list[SimData]] = []
        for fc in (3, 4):  # holding, input registers; unused spaces refuse every address
            if fc in spans:
                start, end = spans[fc]
                blocks.append(
                    [SimData(start, count=end - start, values=0, datatype=DataType.REGISTERS)]
                )
            else:
                blocks.append([SimData(0, datatype=DataType.INVALID)])
        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        return SimDevice(
            unit.unit_id if device_id is None else device_id,
            simdata=(bits, list(bits), blocks[0], blocks[1]),
            action=functools.partial(self._serve, unit),
        )

    async def _serve(  # noqa: PLR0917 - pymodbus calls actions with positional arguments
        self,
        unit: SimUnit,
        function_code: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # a meter's measurements are read-only
        self.requests += 1
        unit.reads += 1
        for listener in list(self._request_listeners):
            listener(unit.unit_id, function_code, address, count)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.response_delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.response_delay)
            if unit.exception_code is not None:
                return ExcCodes(unit.exception_code)
            if count > unit.max_read_registers:
                return ExcCodes.ILLEGAL_VALUE
            if any(address <= a < address + count for a in unit.undefined_registers):
                return ExcCodes.ILLEGAL_ADDRESS
            page = unit.image(step=unit._steps(function_code, address, count)).get(
                function_code, {}
            )
            for offset in range(count):
                registers[address - start + offset] = page.get(address + offset, 0)
            return None
        finally:
            self.in_flight -= 1

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            return pdu
        unit = self._units.get(pdu.dev_id)
        if unit is None and self.answers_every_unit:
            return pdu
        if unit is None:
            return ExceptionResponse(
                pdu.function_code & 0x7F,
                ExcCodes.GATEWAY_NO_RESPONSE,
                device_id=pdu.dev_id,
                transaction=pdu.transaction_id,
            )
        wrong = unit.answer_function_code
        if wrong is not None and not pdu.isError() and pdu.function_code != wrong:
            kind = {3: ReadHoldingRegistersResponse, 4: ReadInputRegistersResponse}[wrong]
            return kind(
                dev_id=pdu.dev_id, transaction_id=pdu.transaction_id, registers=pdu.registers
            )
        return pdu

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending or not data:
            return data
        unit_id = data[0] if self.transport != "tcp" else data[6] if len(data) > 6 else -1
        unit = self._units.get(unit_id)
        if unit is None:
            return data if self.transport == "tcp" else b""  # RTU: absent units are silent
        if unit.silent:
            return b""
        if unit.corrupt_crc and self.transport != "tcp":
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        return data


@contextlib.asynccontextmanager
async def virtual_serial_pair(
    directory: Path, timeout: float = 5.0
) -> AsyncIterator[tuple[str, str]]:
    """Two linked pseudo-terminals made by ``socat``, as ``(meter_end, gateway_end)`` paths.

    Bytes written to one end come out of the other, like an RS-485 line with two nodes but
    at no particular speed: a pty does not pace bytes at the baud rate. Needs ``socat``.
    """
    socat = shutil.which("socat")
    if socat is None:
        raise FileNotFoundError("socat is not installed (apt install socat)")
    meter_end, gateway_end = directory / "tty-meter", directory / "tty-gateway"
    process = await asyncio.create_subprocess_exec(
        socat,
        "-d",
        "-d",
        f"pty,raw,echo=0,link={meter_end}",
        f"pty,raw,echo=0,link={gateway_end}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        seen: list[str] = []
        async with asyncio.timeout(timeout):
            while True:
                line = (await process.stderr.readline()).decode(errors="replace")
                if not line:
                    raise OSError(f"socat exited before the ptys were ready: {''.join(seen)}")
                seen.append(line)
                if "starting data transfer loop" in line:
                    break
        if not (meter_end.exists() and gateway_end.exists()):
            raise OSError(f"socat did not create {meter_end} and {gateway_end}")
        yield str(meter_end), str(gateway_end)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
