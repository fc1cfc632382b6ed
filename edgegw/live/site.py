"""What the live state reads from the gateway's parts rather than from charger events: the
site meter, the load controller's limit, the chargers' cloud links, the outbox backlog."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Protocol

from edgegw.config import Config
from edgegw.live.snapshot import MeterLive

if TYPE_CHECKING:
    from edgegw.auth.authorizer import Authorizer
    from edgegw.energy.controller import ControllerState, LoadController
    from edgegw.energy.meters import MeterPoller, MeterService
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
