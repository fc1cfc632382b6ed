"""Polling one meter: its read plan on its bus at its interval, every reading checked before it
is passed on, and its health said.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping, Sequence

from edgegw.config import MeterConfig
from edgegw.energy.meterhealth import (
    DEFAULT_FROZEN_AFTER,
    FrozenReading,
    HealthListener,
    HealthState,
    MeterHealth,
    MeterSample,
    SampleListener,
    SanityLimits,
    _should_move,
    implausible,
)
from edgegw.energy.modbusbus import Clock, ModbusBus
from edgegw.energy.modbuserrors import ModbusError
from edgegw.energy.readplan import ReadPlan
from edgegw.energy.registers import BadReading, BlockRead, MeterProfile, Quantity, Reading, decode

log = logging.getLogger("edgegw.energy.meters")


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
            reading = self._check(blocks, now, started)
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

    def _check(
        self, blocks: Mapping[tuple[int, int], Sequence[int]], now: float, started: float
    ) -> Reading:
        reading = decode(self.profile, blocks, self._quantities, strict=True)
        problems = implausible(reading, self._limits)
        if problems:
            raise BadReading(problems, partial=reading, meter=self.profile.id)
        image = tuple(tuple(blocks[block.key]) for block in self.blocks)
        if image == self._last_image and _should_move(reading):
            self._same += 1
        else:
            self._same = 1
            self._image_since = started  # the meter measured after the request went out
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
