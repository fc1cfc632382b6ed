"""Limits from outside the configuration: the state of each ``[[limits]]`` signal, what it
lowers while active, and its activation log (§14a EnWG activations among them).

A signal (a control box's relay contact read over Modbus or a GPIO input, an MQTT topic: the
readers are in :mod:`edgegw.energy.external_sources`) says *active* or *not active*. While
active, its node (the site, or a circuit) is lowered to its ``limit_a``; a §14a signal lowers
its circuit to what the regulation guarantees the controllable chargers under it
(:mod:`edgegw.energy.para14a`). The load controller takes it through ``lower_limit(source,
node, limit_a)`` (:class:`LimitSink`), each source kept apart and the lowest limit holding.

Rules, in the order they matter:

* an activation is applied *before* it is written, and written before anything else is done
  with it: a database that fails never delays a cut (it is logged);
* a read that fails changes nothing: the last state read holds (a relay contact that cannot
  be read is not taken as released);
* **across a restart**: activations still open in the log (the daemon stopped while a signal
  held) are put back at start, before any charger connects, and hold until their source is
  read again (:meth:`ExternalLimits.restore`). The limit is therefore in force before the
  first read completes, and a signal that was released meanwhile is released by that read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edgegw.config import Config
from edgegw.config.limits import LimitConfig, chargers_under
from edgegw.energy import para14a
from edgegw.energy.allocator import PerPhase
from edgegw.store.limitlog import LimitLog

log = logging.getLogger("edgegw.energy.limits")


class LimitSink(Protocol):
    """Who applies a lowered limit (``LoadController.lower_limit``)."""

    def lower_limit(self, source: str, node: str | None, limit_a: PerPhase | None) -> None: ...


@dataclass(frozen=True, slots=True)
class Grant:
    """What a signal lowers its node to while active."""

    limit_a: PerPhase
    """§14a: what the controllable chargers under the circuit may draw together, per phase
    (:func:`edgegw.energy.para14a.phase_limits_a`); the planner caps their draw with it, not
    the circuit (no margin taken off, the board's other load on top: :mod:`chargercap`)."""
    granted_kw: float | None
    """§14a: the power the dimmed chargers can draw (their phases, their maximum currents)."""
    chargers: int | None
    """§14a: the number of controllable chargers it is computed for."""


@dataclass(slots=True)
class SignalState:
    """One signal's state."""

    config: LimitConfig
    grant: Grant
    active: bool = False
    read: bool = False
    """Read at least once since the start."""
    since: float | None = None
    activation_id: int | None = None
    restored: bool = False
    """Active because the log said so at start, not read yet."""
    last_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.config.name,
            "source": self.config.source,
            "node": self.config.circuit or "site",
            "para14a": self.config.para14a,
            "active": self.active,
            "read": self.read,
            "restored": self.restored,
            "since": self.since,
            "limit_a": list(self.grant.limit_a),
            "granted_kw": self.grant.granted_kw,
            "chargers": self.grant.chargers,
            "last_error": self.last_error,
        }


def grant_for(limit: LimitConfig, config: Config) -> Grant:
    """What ``limit`` lowers its node to while active."""
    fixed = limit.limits()
    if fixed is not None:
        return Grant(fixed, None, None)
    assert limit.circuit is not None  # the configuration requires it for §14a
    ids = set(chargers_under(limit.circuit, config.circuits, config.chargers))
    under = [c for c in config.chargers if c.id in ids]
    n = max(1, limit.controllable or len(under))
    phases = config.site.phases if config.site is not None else 3
    wiring = [c.site_phases() for c in under] or [tuple(range(phases))]
    amps = para14a.phase_limits_a(n, wiring, voltage_v=limit.voltage_v)
    most = [sum(c.max_current_a for c in under if p in c.site_phases()) for p in range(3)]
    drawable = [min(amps[p], most[p]) if under else amps[p] for p in range(3)]
    kw = sum(drawable) * limit.voltage_v / 1000.0
    return Grant(amps, round(kw, 3), n)


class ExternalLimits:
    """Every ``[[limits]]`` signal's state, applied to ``sink`` and logged to ``log``."""

    def __init__(
        self,
        config: Config,
        sink: LimitSink,
        store: LimitLog | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sink = sink
        self._store = store
        self._clock = clock
        self._writes = asyncio.Lock()
        self.states = {
            limit.name: SignalState(limit, grant_for(limit, config)) for limit in config.limits
        }

    def _node(self, state: SignalState) -> str | None:
        return state.config.circuit

    async def restore(self) -> None:
        """Put back the activations the log has open (see the module's text); close those of
        sources no longer configured."""
        if self._store is None:
            return
        try:
            rows = await self._store.open_activations()
        except Exception:
            log.exception("external limits: the activation log cannot be read")
            return
        for row in rows:
            state = self.states.get(row.source)
            if state is None:
                log.info(
                    "external limit %r is no longer configured: its activation ends", row.source
                )
                await self._write_end(row.id)
                continue
            if state.activation_id is not None:  # an older one left open (its end not written)
                await self._write_end(state.activation_id)
            state.active = state.restored = True
            state.since = row.started_at
            state.activation_id = row.id
            self._sink.lower_limit(row.source, self._node(state), state.grant.limit_a)
            log.warning(
                "external limit %r was active when the gateway stopped: %s held at %s A until "
                "its signal is read",
                row.source,
                state.config.circuit or "the site",
                "/".join(f"{a:g}" for a in state.grant.limit_a),
            )

    async def signal(self, name: str, active: bool) -> None:
        """The source ``name`` was read: ``active`` or not."""
        state = self.states[name]
        state.read = True
        if state.last_error is not None:
            log.info("external limit %r reads again", name)
            state.last_error = None
        if state.restored:
            state.restored = False
            if active:
                log.info("external limit %r: still active", name)
        if active == state.active:
            return
        now = self._clock()
        node = self._node(state)
        if active:
            self._sink.lower_limit(
                name, node, state.grant.limit_a
            )  # first: a cut waits for nothing
            state.active, state.since = True, now
            kw = "" if state.grant.granted_kw is None else f" (§14a: {state.grant.granted_kw:g} kW)"
            log.warning(
                "external limit %r active: %s lowered to %s A%s",
                name,
                node or "the site",
                "/".join(f"{a:g}" for a in state.grant.limit_a),
                kw,
            )
            await self._write_start(state, now)
        else:
            self._sink.lower_limit(name, node, None)
            state.active, state.since = False, now
            log.warning("external limit %r released", name)
            if state.activation_id is not None:
                await self._write_end(state.activation_id)
                state.activation_id = None

    async def use_config(self, config: Config) -> None:
        """A reloaded configuration: a §14a grant follows the chargers now under its circuit
        (more controllable chargers, a larger guaranteed minimum). An active signal whose grant
        changes is applied at once and logged as a new activation from now."""
        for name, state in self.states.items():
            grant = grant_for(state.config, config)
            if grant == state.grant:
                continue
            state.grant = grant
            log.info(
                "external limit %r: %s now %s A%s",
                name,
                state.config.circuit or "the site",
                "/".join(f"{a:g}" for a in grant.limit_a),
                "" if grant.chargers is None else f" for {grant.chargers} charger(s)",
            )
            if not state.active:
                continue
            self._sink.lower_limit(name, self._node(state), grant.limit_a)
            if state.activation_id is not None:
                await self._write_end(state.activation_id)
                state.activation_id = None
            now = self._clock()
            state.since = now
            await self._write_start(state, now)

    def read_failed(self, name: str, why: str) -> None:
        """The source ``name`` could not be read: its last state holds."""
        state = self.states[name]
        if state.last_error is None:
            log.warning(
                "external limit %r cannot be read (%s): it stays %s",
                name,
                why,
                "active" if state.active else "released",
            )
        state.last_error = why

    def snapshot(self) -> list[dict[str, object]]:
        return [state.as_dict() for state in self.states.values()]

    async def _write_start(self, state: SignalState, at: float) -> None:
        if self._store is None:
            return
        async with self._writes:
            try:
                state.activation_id = await self._store.started(
                    state.config.name,
                    para14a=state.config.para14a,
                    node=state.config.circuit or "site",
                    at=at,
                    limit_a=state.grant.limit_a,
                    granted_kw=state.grant.granted_kw,
                    chargers=state.grant.chargers,
                )
            except Exception:
                log.exception(
                    "external limit %r: its activation could not be logged", state.config.name
                )

    async def _write_end(self, activation_id: int) -> None:
        if self._store is None:
            return
        async with self._writes:
            try:
                await self._store.ended(activation_id, self._clock())
            except Exception:
                log.exception("external limits: an activation's end could not be logged")
