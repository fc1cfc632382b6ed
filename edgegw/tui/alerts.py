"""What needs the caretaker's attention, in words: the dashboard's alert lines.

Each alert is one line that starts with "!" and says what is wrong and where, so it reads the
same on a monochrome console. They are worked out from the live snapshot and the live events
(a card refused again and again is only visible in the events).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edgegw.cli.output import plural
from edgegw.tui.model import LiveSnapshot
from edgegw.tui.text import duration, number

REFUSED_WINDOW_S = 600.0
REFUSED_TIMES = 3
"""A card refused this many times within the window is worth an alert (a lost or cloned
card, or a driver who does not know the card is blocked)."""

_FLAG_WORDS: Mapping[str, str] = {
    "ignores_limit": "draws more than its load-capping limit",
    "profile_rejected": "refuses load-capping limits",
    "profile_failed": "does not answer load-capping limits",
    "cannot_pause": "cannot be paused (held at its minimum)",
    "not_controllable": "cannot be load-capped (counted at its maximum)",
}


@dataclass(frozen=True, slots=True)
class Alert:
    text: str
    severity: str = "warning"
    """'error' or 'warning' (styling only; the text says it all)."""


def site_alerts(
    snapshot: LiveSnapshot | None, events: Iterable[Mapping[str, Any]], now: float
) -> list[Alert]:
    """The alerts, most serious first."""
    if snapshot is None:
        return []
    out: list[Alert] = []
    site = snapshot.site
    meter = site.meter
    if meter is not None and meter.ok is False:
        why = f": {meter.last_error}" if meter.last_error else ""
        out.append(
            Alert(f"! Meter {meter.name} lost{why} - chargers held at their safe limit", "error")
        )
    limit = site.limit_a
    if limit is not None and site.current_a is not None:
        over = [
            f"L{i + 1}"
            for i, (value, cap) in enumerate(zip(site.current_a, limit, strict=True))
            if value is not None and cap is not None and value > cap
        ]
        if over:
            out.append(Alert(f"! Site load above the limit on {', '.join(over)}", "error"))
    for charger in snapshot.chargers:
        for fault in charger.faults:
            out.append(Alert(f"! {charger.id} fault: {fault}", "error"))
        for flag in charger.flags:
            words = _FLAG_WORDS.get(flag)
            if words is not None:
                out.append(Alert(f"! {charger.id} {words}"))
    parked = site.sync_parked or 0
    if parked:
        out.append(
            Alert(
                f"! {plural(parked, 'message')} refused by the cloud and parked (see Events)",
                "error",
            )
        )
    if site.cloud in ("offline", "degraded") and (site.sync_queued or 0) > 0:
        age = duration(site.sync_oldest_age_s)
        out.append(
            Alert(
                f"! Cloud {site.cloud}: {plural(site.sync_queued, 'message')} waiting, oldest {age}"
            )
        )
    out += _refused_cards(events, now)
    return out


def _refused_cards(events: Iterable[Mapping[str, Any]], now: float) -> list[Alert]:
    counts: dict[tuple[str, str], int] = {}
    owners: dict[tuple[str, str], str] = {}
    for event in events:
        if event.get("event") != "card_refused":
            continue
        at = number(event.get("at"))
        if at is None or now - at > REFUSED_WINDOW_S:
            continue
        key = (str(event.get("id_tag") or "?"), str(event.get("charger") or "?"))
        counts[key] = counts.get(key, 0) + 1
        owner = event.get("owner")
        if owner:
            owners[key] = str(owner)
    return [
        Alert(
            f"! Card {tag}{f' ({owners[key]})' if key in owners else ''} refused {count} times "
            f"at {charger} in {REFUSED_WINDOW_S / 60:.0f} min"
        )
        for key, count in sorted(counts.items())
        if count >= REFUSED_TIMES
        for tag, charger in [key]
    ]
