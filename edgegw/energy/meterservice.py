"""The meters of a site built from the configuration and run, their profiles found, and the
installer's one-shot :func:`probe` and :func:`scan`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from edgegw.config import BusConfig, Config
from edgegw.energy.meterhealth import DEFAULT_FROZEN_AFTER, MeterSample, implausible
from edgegw.energy.meterpoller import MeterPoller
from edgegw.energy.modbusbus import Clock, ModbusBus
from edgegw.energy.modbuserrors import (
    _GATEWAY_NO_TARGET,
    MeterConfigError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusTimeout,
)
from edgegw.energy.readplan import ReadPlan
from edgegw.energy.registers import MeterProfile, Quantity, Reading, decode, plan_reads
from edgegw.hardware_catalogue import HardwareCatalogue, HardwareError, shipped_files
from edgegw.hardware_catalogue import TemplateProfileError as CatalogueTemplateError
from edgegw.tasks import TaskOwner

log = logging.getLogger("edgegw.energy.meters")


def default_profiles_dir() -> Path:
    """The shipped meter profiles (package ``edgegw.hardware``, an installed folder)."""
    return Path(str(shipped_files() / "meters"))


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


_PHASE_CURRENTS = (Quantity.CURRENT_L1, Quantity.CURRENT_L2, Quantity.CURRENT_L3)
"""What a site meter of a three-phase site must offer: load capping follows these."""


def _site_currents(config: Config) -> tuple[Quantity, ...]:
    """The currents the site meter must offer: L1 alone on a single-phase site."""
    single = config.site is not None and config.site.phases == 1
    return _PHASE_CURRENTS[:1] if single else _PHASE_CURRENTS


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
        self._circuits = tuple(config.circuits)
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
            if meter.role in ("site", "circuit"):
                offered = profiles[meter.profile].registers
                lacking = [q.value for q in _site_currents(config) if q not in offered]
                if lacking:
                    whose = "the site meter's" if meter.role == "site" else "a board meter's"
                    problems.append(
                        f"{key}.profile: {meter.profile!r} has no {', '.join(lacking)}: load "
                        f"capping follows {whose} phase currents; on a single-phase "
                        "supply set [site] phases = 1, else use this meter with "
                        "role = 'monitor'"
                    )
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

    @property
    def circuit_meters(self) -> dict[str, MeterPoller]:
        """The boards' meters (role 'circuit'), by the name of the circuit each measures."""
        pollers = {}
        for circuit in self._circuits:
            poller = self.pollers.get(circuit.meter or "")
            if poller is not None and poller.config.role == "circuit":
                pollers[circuit.name] = poller
        return pollers

    def circuit_samples(self) -> dict[str, MeterSample | None]:
        """Each metered board's latest valid sample (None: none yet), by circuit name."""
        return {name: poller.latest for name, poller in self.circuit_meters.items()}

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
