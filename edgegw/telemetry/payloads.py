"""The JSON of the state topics and events, built from :mod:`edgegw.live.snapshot` types.

Flat where Home Assistant reads it: each value is a scalar whose name carries its unit
(``current_l1_a``, ``power_w``, ``energy_wh``), so a template is ``{{ value_json.power_w }}``
and a missing value (JSON null) reaches Home Assistant as ``None``, which it shows as unknown.
A session's idTag and card owner are personal data: they are left out unless the site
allows them (``mqtt.publish_cards``).
"""

from __future__ import annotations

from typing import Any

from edgegw.live.changes import LiveEvent
from edgegw.live.snapshot import (
    ChargerLive,
    CircuitLive,
    ConnectorLive,
    LimitLive,
    PeakLive,
    Phases,
    SiteLive,
)

JsonDict = dict[str, Any]
CARD_FIELDS = frozenset({"id_tag", "owner"})
TIMESTAMP_FIELDS = frozenset({"at", "meter_age_s", "sync_oldest_age_s", "last_seen"})
"""Values that change with every look at the site: never by themselves worth a message."""
MEASURED_FIELDS = frozenset(
    {"power_w", "ev_power_w", "energy_wh", "energy_import_wh", "peak_projected_kw"}
)
MEASURED_PREFIXES = (
    "current_l",
    "ev_current_l",
    "allocated_l",
    "headroom",
    "load_l",
    "measured_l",
    "other_l",
)
"""Measured values: they move all the time, so they are sent at a slower pace."""


def split_state(payload: Any) -> tuple[Any, Any]:
    """A state payload as ``(discrete, measured)``, timestamps left out of both.

    ``discrete`` is what a change of is news at once (statuses, limits, the cloud link, the
    meter's health, sessions starting); ``measured`` the currents, powers and energies.
    """
    if isinstance(payload, dict):
        discrete: JsonDict = {}
        measured: JsonDict = {}
        for key, value in payload.items():
            if key in TIMESTAMP_FIELDS:
                continue
            if key in MEASURED_FIELDS or key.startswith(MEASURED_PREFIXES):
                measured[key] = value
                continue
            discrete[key], inner = split_state(value)
            if inner not in (None, {}, []):
                measured[key] = inner
        return discrete, measured
    if isinstance(payload, list):
        parts = [split_state(item) for item in payload]
        return [d for d, _ in parts], [m for _, m in parts]
    return payload, None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _phases(name: str, values: Phases | tuple[float, float, float] | None) -> JsonDict:
    per_phase = values or (None, None, None)
    return {f"{name}_l{i}_a": _round(v, 2) for i, v in enumerate(per_phase, 1)}


def site_payload(
    site: SiteLive, limits: tuple[LimitLive, ...] = (), peak: PeakLive | None = None
) -> JsonDict:
    """The site's state; with limits from outside (``limits``: each by name, and how many
    are active) and peak shaving (``peak_*``: the month's peak, the target in force, the
    running quarter-hour's projection, whether it shaves now, what it shaved this month)."""
    return {**_site(site), **outside_payload(limits, peak)}


def outside_payload(limits: tuple[LimitLive, ...], peak: PeakLive | None) -> JsonDict:
    out: JsonDict = {}
    if limits:
        out["limits_active"] = sum(1 for x in limits if x.active)
        out["limits"] = {
            x.name: {
                "active": x.active,
                "node": x.node,
                "source": x.source,
                "para14a": x.para14a,
                "limit_a": min(x.limit_a),
                "granted_kw": x.granted_kw,
                "since": x.since,
                "error": x.last_error,
            }
            for x in limits
        }
    if peak is not None:
        out.update(
            peak_month=peak.month,
            peak_month_kw=_round(peak.month_peak_kw, 3),
            peak_month_at=peak.month_peak_at,
            peak_target_kw=peak.target_kw,
            peak_effective_target_kw=peak.effective_target_kw,
            peak_projected_kw=_round(peak.projected_kw, 3),
            peak_limiting=peak.limiting,
            peak_shaved_quarters=peak.shaved_quarters,
            peak_shaved_kw_max=_round(peak.shaved_kw_max, 3),
        )
    return out


def _site(site: SiteLive) -> JsonDict:
    meter = site.meter
    return {
        "at": round(site.at, 3),
        "limit_a": None if site.limit_a is None else min(site.limit_a),
        **_phases("limit", site.limit_a),
        "margin_a": site.margin_a,
        "mode": site.mode,
        **_phases("current", site.current_a),
        "power_w": _round(site.power_w, 1),
        "energy_import_wh": _round(site.energy_import_wh, 1),
        "meter": None if meter is None else meter.name,
        "meter_health": None if meter is None else meter.health,
        "meter_ok": None if meter is None else meter.ok,
        "meter_age_s": None if meter is None else meter.age_s,
        "meter_error": None if meter is None else meter.last_error,
        **_phases("ev_current", site.ev_current_a),
        "ev_power_w": _round(site.ev_power_w, 1),
        "cloud": site.cloud,
        "cloud_online": site.cloud_online,
        "cloud_links": dict(site.links),
        "sync_queued": site.sync_queued,
        "sync_parked": site.sync_parked,
        "sync_oldest_age_s": site.sync_oldest_age_s,
        "chargers_total": site.chargers_total,
        "chargers_connected": site.chargers_connected,
        "sessions_active": site.sessions_active,
    }


def _least(values: Phases | tuple[float, float, float] | None) -> float | None:
    known = [v for v in values or () if v is not None]
    return _round(min(known), 2) if known else None


def circuit_payload(circuit: CircuitLive) -> JsonDict:
    """One circuit (board): its limit, what load capping allocated under it, the headroom
    left (the tightest phase as ``headroom_a``), the load its chargers measure and, where the
    board has a meter of its own, the meter's reading."""
    return {
        "name": circuit.name,
        "parent": circuit.parent,
        "limit_a": min(circuit.limit_a),
        **_phases("limit", circuit.limit_a),
        "margin_a": circuit.margin_a,
        **_phases("allocated", circuit.allocated_a),
        "headroom_a": _least(circuit.headroom_a),
        **_phases("headroom", circuit.headroom_a),
        **_phases("load", circuit.load_a),
        **_phases("measured", circuit.measured_a),
        "meter": circuit.meter,
        "meter_hold": circuit.meter_hold,
        "meter_age_s": circuit.meter_age_s,
        **_phases("other", circuit.other_a),
        "fallback": circuit.fallback,
        "chargers": list(circuit.chargers),
    }


def _connector(conn: ConnectorLive, cards: bool) -> JsonDict:
    session = conn.session
    session_json: JsonDict | None = None
    if session is not None:
        session_json = {
            "transaction_id": session.transaction_id,
            "started_at": round(session.started_at, 3),
            "meter_start_wh": session.meter_start_wh,
            "energy_wh": _round(session.energy_wh, 1),
            "id_tag_status": session.id_tag_status,
        }
        if cards:
            session_json["id_tag"] = session.id_tag
            session_json["owner"] = session.owner
    return {
        "connector": conn.connector_id,
        "status": conn.status,
        "error_code": conn.error_code,
        "info": conn.info,
        **_phases("current", conn.current_a),
        "power_w": _round(conn.power_w, 1),
        "limit_a": _round(conn.limit_a, 2),
        "session": session_json,
    }


def charger_payload(charger: ChargerLive, *, cards: bool) -> JsonDict:
    return {
        "id": charger.id,
        "label": charger.label,
        "connected": charger.connected,
        "status": charger.status,
        "enabled": charger.enabled,
        "cloud_link": charger.cloud_link,
        "vendor": charger.vendor,
        "model": charger.model,
        "firmware": charger.firmware,
        "ocpp_version": charger.ocpp_version,
        "circuit": charger.circuit,
        **_phases("current", charger.current_a),
        "power_w": _round(charger.power_w, 1),
        "energy_wh": _round(charger.energy_wh, 1),
        "sessions_active": charger.sessions_active,
        "fault": bool(charger.faults),
        "faults": list(charger.faults),
        "flags": list(charger.flags),
        "last_seen": None if charger.last_seen is None else round(charger.last_seen, 3),
        "connectors": [_connector(c, cards) for c in charger.connectors],
    }


def event_payload(event: LiveEvent, *, cards: bool) -> JsonDict:
    data = event.as_dict()
    if not cards:
        for key in CARD_FIELDS:
            data.pop(key, None)
    return data
