"""What the live state reads from the gateway's parts rather than from charger events: the
site meter, the load controller's limit, the chargers' cloud links, the outbox backlog."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Protocol

from edgegw.config import Config
from edgegw.live.chargers import on_site_phases, sum_known, sum_phases
from edgegw.live.snapshot import ChargerLive, MeterLive, SiteLive

if TYPE_CHECKING:
    from edgegw.auth.authorizer import Authorizer
    from edgegw.energy.controller import ControllerState, LoadController
    from edgegw.energy.meters import MeterPoller, MeterSample, MeterService
    from edgegw.proxy.session import ChargerSession
    from edgegw.store.store import Store

log = logging.getLogger(__name__)

Backlog = tuple[int, int, float | None]
"""Messages queued for the cloud, parked, and when the oldest queued one was queued."""


class GatewayParts(Protocol):
    """The parts of :class:`edgegw.daemon.Gateway` the live state reads (all optional)."""

    @property
    def config(self) -> Config: ...

    @property
    def sessions(self) -> Mapping[str, ChargerSession]: ...

    @property
    def store(self) -> Store | None: ...

    @property
    def meters(self) -> MeterService | None: ...

    @property
    def controller(self) -> LoadController | None: ...

    @property
    def authorizer(self) -> Authorizer | None: ...


def link_state(config: Config, session: ChargerSession | None) -> str:
    """A charger's cloud link: standalone, charger offline, online, replaying, connecting,
    offline (the same words as the control socket's ``status``)."""
    if config.cloud is None:
        return "standalone"
    if session is None:
        return "charger offline"
    link = session.link
    if link.cloud_up:
        return "replaying" if link.outbox_pending else "online"
    return "connecting" if link.cloud_connecting else "offline"


def limit_of(config: Config, cstate: ControllerState | None) -> tuple[float, float, float] | None:
    """The limit per phase load capping keeps to (the configured one before its first round)."""
    if cstate is not None:
        return cstate.limit_a
    site = config.site
    return site.limits() if site is not None else None


def meter_live(
    poller: MeterPoller | None, cstate: ControllerState | None, now_monotonic: float
) -> MeterLive | None:
    """The site meter's state; whether capping can follow it is the controller's view."""
    if poller is None:
        return None
    health = poller.health
    if cstate is not None:
        ok = {"ok": True, "lost": False}.get(cstate.meter)
    else:
        ok = {"ok": True, "stale": False, "error": False}.get(health.state.value)
    sample = poller.latest
    return MeterLive(
        name=poller.name,
        health=health.state.value,
        ok=ok,
        age_s=None if sample is None else round(max(0.0, now_monotonic - sample.at), 1),
        last_error=health.last_error,
    )


def link_counts(
    config: Config, sessions: Mapping[str, ChargerSession], connected: Collection[str]
) -> dict[str, int]:
    """How many of the ``connected`` chargers' cloud links are in each state."""
    counts: dict[str, int] = {}
    if config.cloud is None:
        return counts
    for charger_id, session in sessions.items():
        if charger_id in connected:
            state = link_state(config, session)
            counts[state] = counts.get(state, 0) + 1
    return counts


def cloud_summary(config: Config, links: Mapping[str, int]) -> tuple[str, bool | None]:
    """The site's cloud in a word, and whether it is online (None: standalone or unknown)."""
    if config.cloud is None:
        return "standalone", None
    total = sum(links.values())
    if total == 0:
        return "unknown", None
    up = links.get("online", 0) + links.get("replaying", 0)
    if up == total:
        return "online", True
    return ("offline" if up == 0 else "degraded"), False


async def outbox_backlog(store: Store) -> Backlog | None:
    """The outbox counted (None when the store cannot say now)."""
    try:
        rows = await store.outbox.status()
    except Exception as exc:  # the store closing under us, or a locked database
        log.debug("outbox status unavailable: %s", exc)
        return None
    oldest = [r.oldest_queued_at for r in rows if r.oldest_queued_at is not None]
    return (
        sum(r.queued for r in rows),
        sum(r.parked for r in rows),
        min(oldest) if oldest else None,
    )


def site_live(
    config: Config,
    cstate: ControllerState | None,
    chargers: tuple[ChargerLive, ...],
    *,
    sample: MeterSample | None,
    meter: MeterLive | None,
    links: Mapping[str, int],
    backlog: Backlog | None,
    now: float,
    wiring: Callable[[str], tuple[int, ...]],
) -> SiteLive:
    """The site's live view: its meter's latest ``sample``, the controller's state, the
    chargers' loads on the site phases each is wired to (``wiring``), cloud links, backlog."""
    reading = sample.reading if sample is not None else None
    cloud, cloud_online = cloud_summary(config, links)
    connected = [c for c in chargers if c.connected]
    return SiteLive(
        at=now,
        limit_a=limit_of(config, cstate),
        margin_a=config.site.margin_a if config.site is not None else None,
        mode=cstate.mode if cstate is not None else None,
        current_a=None
        if reading is None
        else (reading.current_l1_a, reading.current_l2_a, reading.current_l3_a),
        power_w=None if reading is None else reading.power_w,
        energy_import_wh=None if reading is None else reading.energy_import_wh,
        meter=meter,
        ev_current_a=sum_phases(on_site_phases(c.current_a, wiring(c.id)) for c in connected),
        ev_power_w=sum_known(c.power_w for c in connected),
        cloud=cloud,
        cloud_online=cloud_online,
        links=dict(links),
        sync_queued=None if backlog is None else backlog[0],
        sync_parked=None if backlog is None else backlog[1],
        sync_oldest_age_s=None
        if backlog is None or backlog[2] is None
        else round(max(0.0, now - backlog[2]), 1),
        chargers_total=len(chargers),
        chargers_connected=len(connected),
        sessions_active=sum(c.sessions_active for c in chargers),
        allocated_a=None if cstate is None else cstate.used_a,
        headroom_a=None if cstate is None else cstate.headroom_a,
    )
