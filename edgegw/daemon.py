"""The composition root: parts start in a fixed order and stop along one path, on a budget.

Start: store → local OCPP server → (per charger, on connect) cloud link → READY.
Stop (SIGTERM/SIGINT, or :meth:`Gateway.shutdown`): STOPPING → stop accepting and close every
charger connection with 1001 (going away) → each session closes its cloud link → store flushed
and closed. Whatever is still running when the budget runs out is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection

from edgegw.auth.authority import SiteCards
from edgegw.auth.authorizer import Authorizer
from edgegw.auth.chargerformats import configured_formats
from edgegw.auth.learn import CardLearner
from edgegw.auth.listpush import ListPusher
from edgegw.auth.pushready import PushWhenReady
from edgegw.commission.observer import CommissionObserver
from edgegw.commission.run import SiteView
from edgegw.config import Config, ConfigError, load_config
from edgegw.control.action_ops import ActionOps
from edgegw.control.card_ops import CardOps
from edgegw.control.caretaker_ops import CaretakerOps
from edgegw.control.charger_ops import ChargerOps
from edgegw.control.commission_ops import CommissionOps
from edgegw.control.energy_ops import EnergyOps
from edgegw.control.learn_ops import LearnOps
from edgegw.control.live_ops import LiveOps
from edgegw.control.ops import GatewayOps
from edgegw.control.server import ControlServer
from edgegw.control.session_ops import SessionOps
from edgegw.energy.boardload import board_listener
from edgegw.energy.chargermodels import ChargerModel
from edgegw.energy.controller import LoadController
from edgegw.energy.meters import MeterService
from edgegw.energy.outside import OutsideLimits
from edgegw.energy.sampling import MeterSampling
from edgegw.hardware_catalogue import HardwareCatalogue
from edgegw.livestate import LiveState, Scope
from edgegw.ocpp.hub import EventHub, EventSubscriber
from edgegw.ocpp.versions import OCPP16
from edgegw.proxy.cloudreturn import CloudReturn
from edgegw.proxy.hooks import CloudCallFilter
from edgegw.proxy.keepalive import Keepalive
from edgegw.proxy.local import LocalResponder
from edgegw.proxy.relays import Relays
from edgegw.proxy.server import OcppServer
from edgegw.proxy.session import CallFailed, ChargerSession
from edgegw.proxy.upstream import Upstream
from edgegw.reload import ReloadPlan, plan_reload
from edgegw.sdnotify import Notifier
from edgegw.security.certwatch import CertWatch
from edgegw.services.caretaker import CaretakerSettings
from edgegw.services.charger_actions import ChargerActions, LiveSessions
from edgegw.services.errors import ReloadError
from edgegw.services.ports import Chargers
from edgegw.store import sessions201
from edgegw.store.cards import CardStore
from edgegw.store.decisions import DecisionLog
from edgegw.store.journal import Journal
from edgegw.store.overrides import ChargerOverrides
from edgegw.store.store import Store
from edgegw.tasks import TaskOwner
from edgegw.telemetry.commands import GatewayControls
from edgegw.telemetry.publisher import MqttPublisher

log = logging.getLogger(__name__)


class ChargerNotConnected(LookupError):
    pass


class Gateway:
    """The running edgegw daemon."""

    def __init__(
        self,
        config: Config,
        *,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self._notifier = notifier or Notifier({})
        self._clock = clock
        self._should_exit = asyncio.Event()
        self._tasks = TaskOwner("gateway")
        self.sessions: dict[str, ChargerSession] = {}
        self.chargers = Chargers(lambda: self.config, self.sessions)
        """The configured and connected chargers, as the services see them."""
        self.actions: ChargerActions | None = None
        self._session_changed = asyncio.Condition()
        self._cloud_return = CloudReturn()  # one link through: the others retry now
        self._keepalive = Keepalive()  # pings every charger connection and cloud link
        self.store: Store | None = None
        self.server: OcppServer | None = None
        self.control: ControlServer | None = None
        self._responder: LocalResponder | None = None
        self.relays = Relays(self._new_session)
        self._cards: SiteCards | None = None
        self.hub: EventHub | None = None
        """The charger sessions' one observer, built at the end of :meth:`start`."""
        self._learner = CardLearner(clock)
        self._commission_observer = CommissionObserver(clock=clock)
        self._push_ready: PushWhenReady | None = None
        self.cloud_filters: list[CloudCallFilter] = []
        self.authorizer: Authorizer | None = None
        self.list_pusher: ListPusher | None = None
        self.meters: MeterService | None = None
        self.controller: LoadController | None = None
        self.sampling: MeterSampling | None = None
        self.learn_ops: LearnOps | None = None
        self.live: LiveState | None = None
        self.journal: Journal | None = None
        self.certwatch: CertWatch | None = None
        self.live_ops: LiveOps | None = None
        self.caretaker: CaretakerOps | None = None
        self.mqtt: MqttPublisher | None = None
        self.outside_limits: OutsideLimits | None = None
        """[[limits]] signals and [peak] shaving (with load capping)."""
        self._decisions: DecisionLog | None = None
        self.started = asyncio.Event()
        self._models: dict[str, ChargerModel] = {}

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        cfg = self.config
        if cfg.cloud is not None:
            for charger in cfg.chargers:  # a bad TLS file fails the start, naming the file
                Upstream.tls_context(cfg.cloud, charger)
        self.store = await Store.open_for_daemon(cfg.store, clock=self._clock)
        self.journal = Journal(self.store.db, clock=self._clock)
        self.journal.start()
        self._models = HardwareCatalogue.for_config(cfg).charger_models()
        formats = configured_formats(cfg, self._models)
        self.authorizer = await Authorizer.open(
            self.store.db, cfg.auth, formats=formats, clock=self._clock
        )
        cards = self._cards = SiteCards(self.authorizer, cfg)
        self.store.pricer = cards.price_stop  # a session's cost is fixed when it stops
        self._responder = LocalResponder(
            self.store,
            standalone=cfg.cloud is None,
            heartbeat_interval=cfg.server.heartbeat_interval,
            cards=cards,
            clock=self._clock,
        )
        if cfg.auth.push_local_list:
            self._start_list_pusher(self.authorizer)
        self._start_energy()
        self.control = ControlServer(
            cfg.control.socket,
            group=cfg.control.group or None,
            admin_group=cfg.control.admin_group or None,
        )
        self._register_ops(self.control, self.store, self.authorizer, self.journal)
        if self.controller is not None:  # activations held before a restart: back before chargers
            self.outside_limits = await OutsideLimits.start(
                cfg, self.controller, self.store.db, self.meters
            )
            if self.outside_limits is not None:
                self.outside_limits.register(self.control)
        self.caretaker = CaretakerOps(
            CaretakerSettings(
                self.chargers,
                ChargerOverrides(self.store.db),
                self.journal.event,
                limits=self.controller,
                cards=cards,
                clock=self._clock,
            ),
            rounds=self.controller,
            site_meter=self.meters.site_meter if self.meters is not None else None,
            site=lambda: self.live.site() if self.live is not None else None,
            db=self.store.db,
            clock=self._clock,
        )
        await self.caretaker.settings.restore()  # saved overrides back before chargers connect
        self.caretaker.register(self.control)
        await self.control.start()
        self._start_telemetry()
        self._start_hub()
        assert self.hub is not None
        for charger_id, tx_ref, evse in await sessions201.running_201(self.store):
            self.hub.running201(charger_id, tx_ref, evse)  # their later events name no EVSE
        self.server = OcppServer(
            cfg,
            self.store,
            self._serve_charger,
            record_event=self.journal.event,
            keepalive=self._keepalive,
        )
        await self.server.start()
        # After the server: it judges the server certificate the server has just loaded.
        assert self.store is not None
        self.certwatch = CertWatch(cfg, record_event=self.store.event, clock=self._clock)
        await self.certwatch.start()
        for charger in cfg.chargers:
            if charger.password_hash is None and cfg.security_profile(charger.id) < 3:
                log.warning(
                    "%s has no password: any device on the network can connect as it", charger.id
                )
        mode = f"relaying to {cfg.cloud.url}" if cfg.cloud else "standalone (no cloud)"
        log.info("edgegw ready: %d charger(s) configured, %s", len(cfg.chargers), mode)
        if self._notifier.watchdog_interval:
            self._tasks.spawn(self._watchdog(self._notifier.watchdog_interval), "watchdog")
        self._notifier.ready(f"listening on port {self.server.port}")
        self.started.set()
        if cfg.cloud is not None:  # after READY: a slow drain must not hold up the start
            self._tasks.spawn(self._drain_orphans(), "orphan-drain")

    def _register_ops(
        self, control: ControlServer, store: Store, authorizer: Authorizer, journal: Journal
    ) -> None:
        """The control socket's ops, each over the narrow parts it needs (no op sees the
        gateway); the caretaker's and the charger actions' follow."""
        config, last_message = self._config_in_force, self._last_message
        GatewayOps(
            store,
            config,
            self.sessions,
            reload=self.reload,
            outbox_requeued=self.outbox_requeued,
            journal=journal,
            last_message=last_message,
            clock=self._clock,
        ).register(control)
        EnergyOps(self.controller, self.meters, self._decisions).register(control)
        self.learn_ops = LearnOps(self._learner, self.chargers, authorizer)
        connected = self.chargers.connected_ids
        for ops in (
            CardOps(authorizer, config, pusher=self.list_pusher, connected=connected),
            ChargerOps(
                config,
                store,
                authorizer,
                self.sessions,
                pusher=self.list_pusher,
                last_message=last_message,
                wrong_urls=self._wrong_urls,
            ),
            SessionOps(store, authorizer, config, self._clock),
            self.learn_ops,
            CommissionOps(
                SiteView(config, self.sessions, controller=self.controller, authorizer=authorizer),
                self._commission_observer,  # subscribed to the hub (_start_hub)
                store,
                self.call,
                journal.event,
                clock=self._clock,
            ),
        ):
            ops.register(control)

    def _config_in_force(self) -> Config:
        return self.config  # read at each use by the ops: a reload replaces it

    def _last_message(self, charger_id: str) -> float | None:
        return None if self.live is None else self.live.last_message(charger_id)

    def _wrong_urls(self) -> list[dict[str, Any]]:
        server = self.server
        return [] if server is None else [w.as_dict() for w in server.wrong_urls.entries()]

    def _start_telemetry(self) -> None:
        """The live picture of the site (TUI, status, MQTT), and MQTT when configured. Before the
        OCPP server starts: charger sessions take the observers they start with."""
        assert self.control is not None
        self.live = LiveState(self, clock=self._clock)  # the hub's clock: events carry it
        if self.journal is not None:
            self.live.on_change(self.journal.live_listener, scopes=(Scope.EVENT,))  # its events
        self.live.start()
        self.live_ops = LiveOps(self.live)
        self.actions = ChargerActions(
            self.call,
            self.chargers,
            LiveSessions(self.live),
            self.journal.event if self.journal is not None else None,
        )
        for ops in (self.live_ops, ActionOps(self.actions)):
            ops.register(self.control)
        if self.config.mqtt is not None:
            controls = GatewayControls(
                self.actions,
                self.caretaker.settings.site_limits if self.caretaker is not None else None,
            )
            self.mqtt = MqttPublisher(self.config, self.live, controls=controls)
            self.mqtt.start()

    def _start_list_pusher(self, authorizer: Authorizer) -> None:
        """Chargers that hold a local list get the site's cards, kept in step on every change."""
        assert self.store is not None
        pusher = ListPusher(
            CardStore(self.store.db, clock=self._clock),
            authorizer.local_list,
            authorizer.charger_format,
            self.call,
        )
        authorizer.on_change(pusher.list_changed)
        self._push_ready = PushWhenReady(pusher)
        self.list_pusher = pusher

    def _start_energy(self) -> None:
        """Meters, then (with a [site]) the load-capping controller that follows the site meter."""
        cfg = self.config
        assert self.store is not None
        if cfg.meters:
            self.meters = MeterService(cfg)
            self.meters.start()
        if cfg.site is None:
            return
        models = self._models
        self._decisions = DecisionLog(self.store.db, size=cfg.site.decision_log_size)
        self._decisions.start()
        site_meter = self.meters.site_meter if self.meters else None
        controller = LoadController(
            cfg,
            models,
            self.call,
            (lambda: site_meter.latest) if site_meter else (lambda: None),
            self._decisions,
        )
        if site_meter is not None:
            site_meter.add_listener(lambda _sample: controller.meter_event())
        if self.meters is not None and self.meters.circuit_meters:
            controller.use_circuit_meters(self.meters.circuit_samples)
            for circuit, poller in self.meters.circuit_meters.items():
                poller.add_listener(board_listener(controller, circuit))
        self.cloud_filters.append(controller)
        controller.start()
        self.controller = controller
        # After the controller, so each charger's safe profile goes out first.
        self.sampling = MeterSampling(cfg, models, self.call, record_event=self.store.event)
        self.cloud_filters.append(self.sampling)

    def _start_hub(self) -> None:
        """The parts that follow the chargers, in the order each gets a call's events. Before
        the OCPP server starts: every charger session has the hub as its one observer."""
        parts: list[EventSubscriber | None] = [
            self._commission_observer,
            self.live,
            self._push_ready,
            self.controller,
            self.sampling,  # after the controller, so each charger's safe profile goes first
            self._learner,
        ]
        relays = self.relays

        def version_of(charger_id: str) -> str | None:  # a 2.x charger: read as 2.0.1
            session = relays.get(charger_id)
            return None if session is None else session.link.version

        self.hub = EventHub(
            [part for part in parts if part is not None], clock=self._clock, version_of=version_of
        )

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        """Start, serve until asked to stop, then stop. The daemon's one exit path."""
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            # Not loop.add_signal_handler: that learns of a signal through one byte on the
            # loop's self-pipe, which a busy loop can find full (aiosqlite's wake-ups fill it);
            # the byte, and the SIGTERM, were then lost under load. A Python-level handler
            # runs in the main thread between bytecodes and queues the work on the loop.
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(
                    sig, lambda s, _f: loop.call_soon_threadsafe(self._on_signal, signal.Signals(s))
                )
            signal.signal(
                signal.SIGHUP, lambda _s, _f: loop.call_soon_threadsafe(self._on_reload_signal)
            )
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        try:
            await self.start()
            await self._should_exit.wait()
        finally:
            await self.stop()
            if install_signal_handlers:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._should_exit.is_set():
            log.warning("%s again: stopping now", sig.name)
            for task in self._tasks.tasks:
                task.cancel("forced exit")
        log.info("%s received: shutting down", sig.name)
        self.shutdown()

    def _on_reload_signal(self) -> None:
        log.info("SIGHUP received: reloading the configuration")
        self._tasks.spawn(self._reload_logged(), "reload")

    async def _reload_logged(self) -> None:
        try:
            plan = await self.reload()
        except ReloadError as exc:
            log.error("configuration not reloaded: %s", exc)
            return
        log.log(logging.INFO if plan.applicable else logging.WARNING, "%s", plan.message())

    async def reload(self) -> ReloadPlan:
        """Re-read the configuration file and apply what can change live (see
        :mod:`edgegw.reload`); nothing is applied when anything else changed."""
        if self.config_path is None:
            raise ReloadError("the daemon was not started from a configuration file")
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            raise ReloadError(str(exc)) from None
        plan = plan_reload(self.config, new)
        if plan.empty or not plan.applicable:
            if self.certwatch is not None:  # a certificate renewed in place changes no setting
                await self.certwatch.check_now()
            return plan
        try:  # load capping takes the new set of chargers before any of them connects
            if self.controller is not None:
                self.controller.use_config(new)
            if self.sampling is not None:
                self.sampling.use_config(new)
            formats = configured_formats(new, self._models)
        except ValueError as exc:  # ChargerModelError too: nothing was applied
            raise ReloadError(str(exc)) from None
        if self.authorizer is not None:  # a new charger's idTag format and free-charging tag
            self.authorizer.use_formats(formats)
        if self._cards is not None:
            self._cards.use_config(new)
        self.config = new
        if self.outside_limits is not None:  # a §14a grant follows the chargers on its circuit
            await self.outside_limits.use_config(new)
        if self.server is not None:
            self.server.use_config(new)
        if self.controller is not None:  # its car may go on drawing: paused first, and counted
            await self.controller.pause_removed(plan.removed)
        for charger_id in plan.removed:
            session = self.sessions.get(charger_id)
            if session is not None:
                await session.close(1008, "removed from the configuration")
        await self._event("config.reloaded", plan.message())
        if self.certwatch is not None:
            self.certwatch.use_config(new)
            await self.certwatch.check_now()
        return plan

    async def _event(self, kind: str, message: str) -> None:
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.event(kind, message)

    def shutdown(self) -> None:
        """Ask the daemon to stop (idempotent; safe from signal handlers)."""
        self._should_exit.set()

    async def stop(self) -> None:
        self._notifier.stopping()
        budget = self.config.daemon.shutdown_timeout
        started = time.monotonic()
        log.info("stopping: closing %d charger connection(s)", len(self.sessions))
        try:
            async with asyncio.timeout(budget):
                if self.server is not None:
                    await self.server.stop()
                await self.relays.close()
        except TimeoutError:
            log.warning("shutdown budget of %.0f s exceeded; cancelling the rest", budget)
        await self._tasks.close("shutdown")
        await self._cloud_return.close()  # its probe
        await self._keepalive.close()
        if self.certwatch is not None:
            await self.certwatch.close()
        if self.mqtt is not None:
            await self.mqtt.close()
        if self.caretaker is not None:
            await self.caretaker.aclose()
        if self.live_ops is not None:
            self.live_ops.close()
        if self.live is not None:
            await self.live.close()
        if self.control is not None:
            await self.control.close()
        if self.list_pusher is not None:
            await self.list_pusher.close()
        if self.sampling is not None:
            await self.sampling.close()
        if self.outside_limits is not None:
            await self.outside_limits.close()
        if self.controller is not None:
            await self.controller.close()
        if self.meters is not None:
            await self.meters.close()
        if self._decisions is not None:
            await self._decisions.close()
        if self.authorizer is not None:
            await self.authorizer.close()
        if self.journal is not None:
            await self.journal.close()  # its last entries, before the database closes
        if self.store is not None:
            await self.store.close()
        log.info("stopped in %.2f s", time.monotonic() - started)

    async def _watchdog(self, interval: float) -> None:
        while True:
            self._notifier.watchdog()
            await asyncio.sleep(interval)

    # ------------------------------------------------------------ chargers

    async def _serve_charger(self, charger_id: str, ws: ServerConnection) -> None:
        await self.relays.connection(charger_id, ws, self._serve_session)

    async def _new_session(self, charger_id: str, ws: ServerConnection | None) -> ChargerSession:
        """A charger's relay session; ``ws`` None: a charger away that still owes the cloud."""
        assert self.store is not None and self._responder is not None
        transaction_ids = await self.store.outbox.transaction_ids(charger_id)
        parked = await self.store.outbox.parked_transactions(charger_id)
        headers = ws.request.headers if ws is not None and ws.request is not None else None
        return ChargerSession(
            charger_id,
            config=self.config,
            charger=self.config.charger(charger_id),
            store=self.store,
            responder=self._responder,
            clock=self._clock,
            transaction_ids=transaction_ids,
            parked_transactions=parked,
            observers=(self.hub,) if self.hub is not None else (),
            cloud_filters=self.cloud_filters,
            cloud_return=self._cloud_return,
            keepalive=self._keepalive,
            charger_authorization=headers.get("Authorization") if headers else None,
            user_agent=headers.get("User-Agent") if headers else None,
        )

    async def _serve_session(self, session: ChargerSession) -> None:
        assert self.store is not None and session.ws is not None
        charger_id, ws = session.charger_id, session.ws
        address = ws.remote_address[0] if ws.remote_address else None
        log.info("%s connected from %s", charger_id, address)
        await self.store.charger_seen(charger_id, address, connected=True)
        await self._set_session(charger_id, session)
        hub = self.hub
        assert hub is not None  # built before the OCPP server starts
        hub.charger_connected(charger_id)
        try:
            await session.serve()
        finally:
            hub.charger_disconnected(charger_id)
            if self.sessions.get(charger_id) is session:
                await self._set_session(charger_id, None)
                with contextlib.suppress(Exception):
                    await self.store.charger_seen(charger_id, None, connected=False)
            reason = f" {ws.close_reason}" if ws.close_reason else ""
            log.info("%s disconnected (code %s%s)", charger_id, ws.close_code, reason)

    async def outbox_requeued(self, charger_id: str | None) -> None:
        """Parked messages were put back in the queue: every session of those chargers reads
        its outbox again, and chargers that are away get a session that delivers them."""
        for session in self.relays.sessions():
            if charger_id is None or session.charger_id == charger_id:
                session.reload_outbox()
        if self.config.cloud is not None:
            await self._drain_orphans()

    async def _drain_orphans(self) -> None:
        """Chargers that are away still owe the cloud their queued messages."""
        assert self.store is not None
        owing = [row.charger_id for row in await self.store.outbox.status() if row.queued]
        started = await self.relays.drain(owing)
        if started:
            log.info(
                "%d charger(s) not connected have queued messages: delivering them to the cloud "
                "as each charger",
                started,
            )

    async def _set_session(self, charger_id: str, session: ChargerSession | None) -> None:
        async with self._session_changed:
            if session is None:
                self.sessions.pop(charger_id, None)
            else:
                self.sessions[charger_id] = session
            self._session_changed.notify_all()

    async def wait_charger(self, charger_id: str, *, connected: bool = True) -> None:
        """Wait until ``charger_id`` is (or is no longer) connected."""
        async with self._session_changed:
            await self._session_changed.wait_for(lambda: (charger_id in self.sessions) == connected)

    async def call(
        self,
        charger_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float = 30.0,
        *,
        version: str = OCPP16,
    ) -> dict[str, Any]:
        """Send a gateway call to a connected charger; raises on refusal or disconnect.

        ``version``: the OCPP version the call is written in (a charger speaking another one
        gets nothing: :class:`CallFailed`)."""
        session = self.sessions.get(charger_id)
        if session is None:
            raise ChargerNotConnected(charger_id)
        try:
            return await session.call(action, payload, timeout, version)
        except TimeoutError:
            raise CallFailed(f"{charger_id} did not answer {action} in {timeout:.0f} s") from None
