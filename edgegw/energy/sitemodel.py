"""The load controller's picture of the site, fed by charger events: no asyncio, no I/O.

:class:`SiteModel` holds the chargers (their configuration, model, wiring and flags), their
connectors and sessions (status, transaction, what they measured per *site* phase, the phases
the car draws on, the limit the last round decided), the cloud's profiles each charger
accepted, and the gateway's profiles: those wanted (``desired``), those the charger
acknowledged (``acked``: what counts as in force) and those it may have lost (``stale``).

It changes only through :meth:`SiteModel.handle` (an :mod:`edgegw.ocpp.events` event), the
cloud calls a charger accepted, the configuration, a caretaker's override, the senders'
outcomes (:meth:`profile_acked`, :meth:`profile_failed`) and the rounds
(:mod:`edgegw.energy.planner`). What the I/O shell must do about a change (run a round, wake a
charger's sender) it is told through :class:`ModelHooks`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from edgegw.config import ChargerConfig, CircuitConfig, Config, SiteConfig
from edgegw.energy import cloudcaps
from edgegw.energy.allocator import AllocationResult, PerPhase, Phase
from edgegw.energy.chargermodels import ChargerModel, Purpose, model_for
from edgegw.energy.heldboards import held_over_boards
from edgegw.energy.inforce import EPS, kept_command, meaningful_change
from edgegw.energy.nodelimits import NodeLimits
from edgegw.energy.profiles import (
    ConnectorLimit,
    ProfileCommand,
    ProfileKey,
    cleared_gateway_keys,
    iec_limit,
    plan_profiles,
    replaced_gateway_keys,
)
from edgegw.energy.siterecords import (
    MODEL_FLAGS,
    BoardView,
    ChargerRecord,
    CircuitSamples,
    Flag,
    MeterView,
    ModelHooks,
    NoHooks,
    SessionRecord,
    Tuning,
    no_circuit_samples,
)
from edgegw.ocpp import lifecycle
from edgegw.ocpp.events import (
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ConnectorStatus,
    Event,
    Measured,
    SessionStarted,
    SessionStopped,
)

log = logging.getLogger("edgegw.energy.controller")

JsonDict = dict[str, Any]


class SiteModel:
    """Chargers, sessions, measurements and profiles (see the module's text).

    ``clock`` is monotonic (arrival, measurement and limit-change times), ``wall_clock`` POSIX
    time (profile timestamps, a transaction's start for the cloud's relative profiles).
    """

    def __init__(
        self,
        config: Config,
        models: Mapping[str, ChargerModel],
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        tuning: Tuning,
        hooks: ModelHooks | None = None,
    ) -> None:
        if config.site is None:
            raise ValueError("load capping needs a [site] section in the configuration")
        self.config = config
        self.site: SiteConfig = config.site
        self.models = models
        self.clock = clock
        self.wall = wall_clock
        self.tuning = tuning
        self.hooks: ModelHooks = hooks or NoHooks()
        self.chargers: dict[str, ChargerRecord] = {}
        self.removed: set[str] = set()
        """Chargers removed from the configuration: their late events are ignored."""
        self.meter = MeterView()
        self.boards: dict[str, BoardView] = {}
        """The boards' meters, by circuit name (see :mod:`edgegw.energy.boardload`)."""
        self.circuit_samples: Callable[[], CircuitSamples] = no_circuit_samples
        """Where the rounds read the boards' meter samples (:meth:`use_circuit_meters`)."""
        self.last_round: float | None = None
        self.last_result: AllocationResult | None = None
        self.last_non_ev: PerPhase | None = None
        self.node_limits = NodeLimits()
        """The site's temporary limit, and the limits lowered from outside."""
        for charger in config.chargers:  # fail early on a model name that does not exist
            self.charger(charger.id)
        self.check_boards()

    # ------------------------------------------------------------------ limits

    def limits(self) -> PerPhase:
        """The site's limit in force (:meth:`NodeLimits.site`)."""
        return self.node_limits.site(self.site.limits(), self.clock())

    def circuit_limits(self, circuit: CircuitConfig) -> PerPhase:
        """A circuit's limit in force: its configured one, lowered by :meth:`lower_limit`."""
        return self.node_limits.lowered(circuit.limits(), circuit.name)

    def set_temporary_limit(self, limit_a: PerPhase | None, duration_s: float | None) -> None:
        self.node_limits.set_temporary(limit_a, duration_s, self.clock())

    def lower_limit(self, source: str, node: str | None, limit_a: PerPhase | None) -> None:
        """``source`` lowers the site (``node`` None) or a circuit (:meth:`NodeLimits.lower`),
        from the next round on."""
        if node is not None and all(c.name != node for c in self.config.circuits):
            defined = ", ".join(c.name for c in self.config.circuits) or "none"
            raise ValueError(f"no circuit named {node!r} (defined: {defined})")
        self.node_limits.lower(source, node, limit_a)
        self.hooks.round_wanted()
        self.hooks.changed()

    def use_circuit_meters(self, latest: Callable[[], CircuitSamples]) -> None:
        """Read the boards' meter samples (by circuit name) from ``latest`` each round."""
        self.circuit_samples = latest
        self.hooks.round_wanted()

    # ------------------------------------------------------------------ chargers

    def charger(self, charger_id: str) -> ChargerRecord:
        ch = self.chargers.get(charger_id)
        if ch is None:
            config = self.config.charger(charger_id) or ChargerConfig(id=charger_id)
            ch = self.make_charger(config)
            self.chargers[charger_id] = ch
        return ch

    def make_charger(self, config: ChargerConfig) -> ChargerRecord:
        model = model_for(self.models, config)
        ch = ChargerRecord(
            id=config.id,
            config=config,
            model=model,
            # A single-phase site has L1 alone (a configured charger is checked to be on
            # L1; one that is not configured is put there).
            wiring=(Phase.L1,)
            if self.site.phases == 1
            else tuple(Phase(i) for i in config.site_phases()),
        )
        if model.cap_purpose is None:
            ch.flags.add(Flag.NOT_CONTROLLABLE)
        elif model.cap_purpose is Purpose.TX:
            ch.flags.add(Flag.NO_SAFE_PROFILE)
        return ch

    def known(self, charger_id: str) -> ChargerRecord | None:
        """The charger an event is about, or None for one removed from the configuration."""
        if charger_id in self.removed:
            return None
        return self.charger(charger_id)

    def check_override(self, ch: ChargerRecord, amps: float) -> None:
        """Raise :class:`ValueError` saying why ``amps`` cannot be ``ch``'s maximum."""
        configured = max(ch.min_a, ch.config.max_current_a)
        if not math.isfinite(amps) or amps < 0:
            raise ValueError("the maximum current must be a number of amperes, 0 or more")
        if ch.model.cap_purpose is None:
            raise ValueError(
                f"{ch.id} cannot be limited: its model ({ch.model.id}) has no usable smart charging"
            )
        if amps > configured + EPS:
            raise ValueError(
                f"{amps:g} A is above what {ch.id} is configured for ({configured:g} A); the "
                "maximum can only be lowered here (the installer sets max_current_a)"
            )
        if amps == 0 and not ch.model.can_pause:
            raise ValueError(
                f"{ch.id} cannot be paused with 0 A (its model {ch.model.id} ignores a 0 A "
                f"limit); the lowest maximum is {ch.min_a:g} A"
            )
        if 0 < amps < ch.min_a - EPS:
            raise ValueError(
                f"{amps:g} A is below {ch.id}'s minimum of {ch.min_a:g} A (a car cannot charge "
                "with less); give at least the minimum, or 0 to pause it"
            )

    def set_charger_max(self, charger_id: str, max_current_a: float | None) -> None:
        if self.config.charger(charger_id) is None:
            raise ValueError(f"no charger {charger_id!r} is configured")
        ch = self.charger(charger_id)
        if max_current_a is not None:
            self.check_override(ch, max_current_a)
        ch.max_override = max_current_a
        log.info(
            "%s: caretaker maximum %s",
            charger_id,
            "removed" if max_current_a is None else f"{max_current_a:g} A",
        )
        if ch.connected:
            self.replan(ch)  # the safe profile of a charger without sessions follows it too
        self.hooks.round_wanted()
        self.hooks.changed()

    # ------------------------------------------------------------------ configuration

    def use_config(self, config: Config) -> None:
        """Take a reloaded configuration's set of chargers (see ``LoadController.use_config``)."""
        if config.site != self.site:
            raise ValueError("the [site] section changed: restart edgegw to apply it")
        fresh: dict[str, ChargerRecord] = {}
        for charger in config.chargers:  # check every new model before changing anything
            known = self.chargers.get(charger.id)
            if known is None or known.config != charger:
                fresh[charger.id] = self.make_charger(charger)
        old_ids = {c.id for c in self.config.chargers}
        new_ids = {c.id for c in config.chargers}
        self.config = config
        for charger_id, made in fresh.items():
            known = self.chargers.get(charger_id)
            if known is None:
                self.chargers[charger_id] = made
                self.removed.discard(charger_id)
                log.info("%s added to load capping", charger_id)
                continue
            known.config = made.config  # a live setting changed (label, password...)
            if known.model is not made.model or known.wiring != made.wiring:
                known.model, known.wiring = made.model, made.wiring
                known.flags = (known.flags - MODEL_FLAGS) | (made.flags & MODEL_FLAGS)
                if known.connected:
                    self.replan(known)
        for charger_id in sorted(new_ids):
            back = self.chargers.get(charger_id)
            if back is not None and back.retired:  # removed while charging, and back again
                back.retired = False
                log.info("%s is back in load capping", charger_id)
        for charger_id in sorted(old_ids - new_ids):
            self._retire(charger_id)
        names = {c.name for c in config.circuits}
        for gone in set(self.boards) - names:
            del self.boards[gone]
        self.node_limits.keep_circuits(names)
        self.check_boards()
        self.hooks.round_wanted()
        self.hooks.changed()

    def check_boards(self) -> None:
        """Warn about every board the load held outside the allocator can overload alone."""
        for problem in held_over_boards(self.config.circuits, self.site, self.chargers.values()):
            log.warning("%s", problem)

    def _retire(self, charger_id: str) -> None:
        """``charger_id`` left the configuration: stop controlling it."""
        ch = self.chargers.get(charger_id)
        if ch is None:
            return
        drawing = [s for s in ch.sessions.values() if ch.offered(s.connector) > 0]
        measured = self.site.meter_role == "grid" and self.meter.state != "lost"
        if drawing and not measured:
            # Its car may still draw and nothing measures it (a non-EV meter, or a grid meter
            # that is lost): counted at its limit in force until its session ends or, with a
            # grid meter, until the meter reads again once the charger has gone (from then on
            # the meter measures that car as building load).
            ch.retired = True
            log.warning(
                "%s removed from the configuration while charging: its %d session(s) stay "
                "counted at their limit in force until %s",
                charger_id,
                len(drawing),
                "the grid meter measures them"
                if self.site.meter_role == "grid"
                else "they end (the site meter does not measure the chargers)",
            )
            return
        self.drop(ch)

    def pause_removed(self, charger_ids: Iterable[str]) -> list[ChargerRecord]:
        """Give the removed chargers still counted their pause limit (0 A, or the minimum of
        a model that 0 A does not pause) and plan it; returns those that will be sent one."""
        pausing = []
        for charger_id in charger_ids:
            ch = self.chargers.get(charger_id)
            if ch is None or not ch.retired or not ch.connected or not ch.sessions:
                continue
            if ch.model.cap_purpose is None:
                continue  # nothing can pause it: it stays counted at its maximum
            paused = iec_limit(ch.model, 0.0, ch.min_a)
            for session in ch.sessions.values():
                session.limit_a = paused
                session.reason = "removed"
            self.replan(ch)
            log.info("%s removed while charging: sending it %g A before it goes", ch.id, paused)
            pausing.append(ch)
        return pausing

    def release_retired(self) -> None:
        """The grid meter reads, and measures the cars of removed chargers that have gone."""
        for ch in [c for c in self.chargers.values() if c.retired and not c.connected]:
            self.drop(ch)

    def drop(self, ch: ChargerRecord) -> None:
        """Forget a charger removed from the configuration."""
        if self.site.meter_role == "grid" and not ch.retired:
            # Its cars were allocator sessions, outside the held estimate of the building
            # load; from now on the grid meter counts what they still draw as building load:
            # at most their limits in force. Without that the estimate jumps to its upper
            # bound (every unmeasured car counted as building load) and pauses the others.
            held = list(self.meter.held_non_ev)
            for session in ch.sessions.values():
                offered = ch.offered(session.connector)
                for p in session.car_phases or ch.site_phases:
                    before = held[p]
                    if before is not None:
                        held[p] = before + offered
            self.meter.held_non_ev = (held[0], held[1], held[2])
        del self.chargers[ch.id]
        self.removed.add(ch.id)
        self.hooks.dropped(ch.id)
        log.info("%s removed from load capping: its share goes back to the others", ch.id)
        self.hooks.round_wanted()
        self.hooks.changed()

    # ------------------------------------------------------------------ events

    def handle(self, event: Event) -> None:
        """Take what one charger event means for load capping."""
        if isinstance(event, ChargerConnected):
            self.connected(event.charger_id)
            return
        if isinstance(event, ChargerDisconnected):
            self.disconnected(event.charger_id)
            return
        ch = self.known(event.charger_id)  # any call: an unconfigured charger is known too
        if ch is None:
            return
        if isinstance(event, ConnectorStatus):
            self._on_status(ch, event)
        elif isinstance(event, SessionStarted):
            self._on_start(ch, event)
        elif isinstance(event, SessionStopped):
            self._on_stop(ch, event)
        elif isinstance(event, Measured):
            self._on_measured(ch, event)
        elif isinstance(event, ChargerBooted):
            # A reboot ends transactions (and their TxProfiles) and may clear the rest.
            self.forget(ch, [k for k in ch.acked if k.purpose is Purpose.TX])
            ch.stale = set(ch.desired)

    def connected(self, charger_id: str) -> None:
        self.removed.discard(charger_id)  # let in again: a charger of its own now
        ch = self.charger(charger_id)
        ch.connected = True
        ch.failures = 0
        # Whatever it had may be gone (some chargers drop profiles on reconnect): resend all.
        self.replan(ch)
        ch.stale = set(ch.desired)
        self.hooks.send_pending(ch.id)
        self.hooks.round_wanted()
        self.hooks.changed()

    def disconnected(self, charger_id: str) -> None:
        ch = self.chargers.get(charger_id)
        if ch is None:
            return
        ch.connected = False
        self.hooks.wake(ch.id)  # the sender notices and waits for the next connect
        if ch.retired and all(ch.offered(s.connector) <= 0 for s in ch.sessions.values()):
            self.drop(ch)  # removed, and paused: it keeps its 0 A profile, nothing can draw
            return
        self.hooks.round_wanted()
        self.hooks.changed()

    def _new_session(self, ch: ChargerRecord, connector: int) -> SessionRecord:
        now = self.clock()
        session = SessionRecord(
            connector=connector, arrived_at=now, started_wall=self.wall(), offered_since=now
        )
        ch.sessions[connector] = session
        ch.connectors.add(connector)
        return session

    def _on_status(self, ch: ChargerRecord, event: ConnectorStatus) -> None:
        connector, status = event.connector, event.status
        if connector <= 0:
            return
        ch.connectors.add(connector)
        ch.statuses[connector] = status
        session = ch.sessions.get(connector)
        if lifecycle.status_opens(status):
            if session is None:
                session = self._new_session(ch, connector)
                self.hooks.round_wanted()
            elif session.status != status:
                self.hooks.round_wanted()
            session.status = status
        elif lifecycle.status_ends(status) and session is not None:
            self._end_session(ch, connector)

    def _on_start(self, ch: ChargerRecord, event: SessionStarted) -> None:
        session = ch.sessions.get(event.connector) or self._new_session(ch, event.connector)
        session.transaction_id = event.transaction_id
        self.hooks.round_wanted()

    def _on_stop(self, ch: ChargerRecord, event: SessionStopped) -> None:
        for connector, session in list(ch.sessions.items()):
            if lifecycle.stop_ends(event.transaction_id, session.transaction_id):
                self._end_session(ch, connector)

    def _end_session(self, ch: ChargerRecord, connector: int) -> None:
        session = ch.sessions.pop(connector, None)
        if session is None:
            return
        if session.ignoring and not any(s.ignoring for s in ch.sessions.values()):
            ch.flags.discard(Flag.IGNORES_LIMIT)
        # The charger deletes a TxProfile when its transaction ends (spec-facts §2.1).
        for key in [k for k in ch.acked if k.connector_id == connector and k.purpose is Purpose.TX]:
            del ch.acked[key]
            ch.desired.pop(key, None)
        cloudcaps.drop_tx_profiles(ch.cloud, connector)
        if ch.retired and not ch.sessions:
            self.drop(ch)
            return
        self.replan(ch)
        self.hooks.round_wanted()

    def _on_measured(self, ch: ChargerRecord, event: Measured) -> None:
        connector = event.connector
        if connector <= 0:
            return
        session = ch.sessions.get(connector)
        if session is None:
            if not lifecycle.measured_opens(ch.statuses.get(connector), event.transaction_id):
                return  # no transaction, or an idle connector's replayed backlog
            session = self._new_session(ch, connector)  # a session we missed the start of
            self.hooks.round_wanted()
        if event.transaction_id is not None and session.transaction_id is None:
            session.transaction_id = event.transaction_id
        currents = event.currents(len(ch.wiring))
        if currents is None:
            return
        measured = ch.site_currents(currents)
        session.measured_a = measured
        session.measured_at = self.clock()
        biggest = max(measured)
        if biggest >= self.tuning.draw_threshold_a:
            floor = max(self.tuning.draw_threshold_a, 0.2 * biggest)
            drawing = frozenset(p for p in ch.site_phases if measured[p] >= floor)
            if drawing:
                session.car_phases = drawing

    # ------------------------------------------------------------------ the cloud's calls

    def cap_limit(self, ch: ChargerRecord, connector: object) -> float | None:
        """The cap a cloud profile on ``connector`` is clamped to (0: the whole charger)."""
        return cloudcaps.cap_limit(
            ch.model.cap_purpose,
            connector,
            decided={c: s.limit_a for c, s in ch.sessions.items()},
            safe_a=ch.safe_limit(),
        )

    def cloud_call_accepted(self, ch: ChargerRecord, action: str, payload: JsonDict) -> None:
        """The charger accepted a cloud call that may have changed its profiles."""
        if action == "SetChargingProfile":
            connector = cloudcaps.install(ch.cloud, payload, self.wall())
            if connector is not None:
                session = ch.sessions.get(connector)
                if session is not None:
                    session.cloud_tx = True
            replaced = replaced_gateway_keys(payload, ch.model, ch.acked)
            if replaced:
                log.info(
                    "%s: the cloud's profile replaced the gateway's %s; re-asserting the cap",
                    ch.id,
                    ", ".join(sorted(map(str, replaced))),
                )
                self.forget(ch, replaced)
        elif action == "ClearChargingProfile":
            cloudcaps.clear(ch.cloud, payload)
            for session in ch.sessions.values():
                session.cloud_tx = cloudcaps.has_tx_profile(ch.cloud.values(), session.connector)
            cleared = cleared_gateway_keys(payload, ch.model, ch.acked)
            if cleared:
                log.info(
                    "%s: a cloud ClearChargingProfile removed the gateway's %s; re-asserting "
                    "the cap",
                    ch.id,
                    ", ".join(sorted(map(str, cleared))),
                )
                self.forget(ch, cleared)
        elif action == "RemoteStartTransaction":
            cloudcaps.remote_start(ch.cloud, payload, self.wall())

    # ------------------------------------------------------------------ the gateway's profiles

    def forget(self, ch: ChargerRecord, keys: Iterable[ProfileKey]) -> None:
        """These gateway profiles are gone from the charger: count them so, and resend."""
        for key in keys:
            ch.acked.pop(key, None)
            if key in ch.desired:
                ch.stale.add(key)
        self.replan(ch)
        self.hooks.wake(ch.id)

    def replan(self, ch: ChargerRecord) -> None:
        """Recompute the charger's profiles from its sessions' decided limits."""
        if ch.model.cap_purpose is None:
            return
        limits = [
            ConnectorLimit(
                connector_id=s.connector,
                limit_a=s.limit_a,
                phases=len(s.car_phases or ch.site_phases),
                transaction_id=s.tx_number,
                in_transaction=s.transaction_id is not None,
                cloud_tx_profile=s.cloud_tx,
            )
            for s in ch.sessions.values()
            if s.limit_a is not None
        ]
        plan = plan_profiles(
            ch.model,
            limits,
            connectors=ch.connectors,
            safe_limit_a=ch.safe_limit(),
            charger_phases=len(ch.wiring),
            min_a=ch.min_a,
            now=self.wall(),
        )
        desired: dict[ProfileKey, ProfileCommand] = {}
        for cmd in plan:
            old = ch.desired.get(cmd.key)
            if old is None or meaningful_change(old, cmd, self.site.min_change_a):
                desired[cmd.key] = cmd
                continue
            # The old profile stays on the charger, split afresh between its connectors (a
            # session came or went). The split must add up to the old limit, not the new one:
            # what counts as in force is what the charger really has. Counting an unsent
            # raise as in force would hide it from the estimate of the building load, and
            # the next raise would overload the site by as much.
            desired[cmd.key] = kept_command(old, cmd)
            acked = ch.acked.get(cmd.key)
            if acked is not None and acked.fingerprint == old.fingerprint:
                ch.acked[cmd.key] = desired[cmd.key]
        ch.desired = desired
        ch.stale &= set(desired)
        if ch.pending():
            self.hooks.send_pending(ch.id)

    def track_offered(self, session: SessionRecord, offered: float, now: float) -> None:
        """Note when the limit in force on ``session`` changed (a start, a pause, a cut)."""
        previous = session.last_offered
        if previous is not None and abs(previous - offered) < EPS:
            return
        if offered > 0 and not previous:
            session.started_at = now
        elif offered <= 0 and previous:
            session.paused_at = now
        if previous is None or offered < previous:
            session.cut_at = now
        if previous is not None:
            earlier = session.earlier_offers
            earlier.append((now, previous))
            horizon = now - self.site.meter_lost_after  # no valid sample is older
            while earlier and earlier[0][0] < horizon:
                earlier.pop(0)
        session.last_offered = offered
        session.offered_since = now

    def profile_acked(self, ch: ChargerRecord, cmd: ProfileCommand) -> None:
        """The charger accepted ``cmd``: it is in force."""
        current = ch.desired.get(cmd.key)
        ch.acked[cmd.key] = (
            current if current is not None and current.fingerprint == cmd.fingerprint else cmd
        )
        if current is not None and current.fingerprint == cmd.fingerprint:
            ch.stale.discard(cmd.key)
        if ch.flags & {Flag.PROFILE_REJECTED, Flag.PROFILE_FAILED}:
            log.info("%s accepts its charging profiles again", ch.id)
            ch.flags -= {Flag.PROFILE_REJECTED, Flag.PROFILE_FAILED}
            ch.last_error = None
        ch.failures = 0
        now = self.clock()
        for session in ch.sessions.values():
            self.track_offered(session, ch.offered(session.connector), now)

    def profile_failed(self, ch: ChargerRecord, cmd: ProfileCommand, flag: Flag, why: str) -> None:
        """The charger refused ``cmd`` or did not answer: shown, and retried."""
        ch.failures += 1
        ch.last_error = f"{cmd.key} {cmd.limit_a:.1f} A: {why}"
        if flag not in ch.flags:
            log.warning(
                "%s did not take its charging profile %s: %s; retrying", ch.id, cmd.key, why
            )
        ch.flags.add(flag)

    def is_cut(self, ch: ChargerRecord, cmd: ProfileCommand) -> bool:
        acked = ch.acked.get(cmd.key)
        return acked is None or cmd.limit_a < acked.limit_a

    def settled(self) -> bool:
        """No connected charger has a profile still to send."""
        return all(not ch.pending() for ch in self.chargers.values() if ch.connected)
