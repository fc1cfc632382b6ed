"""The limits from outside and peak shaving, as the live snapshot shows them: each
``[[limits]]`` signal (active or not, what it lowers and to what, §14a's grant) and the month's
capacity peak with what was shaved (:class:`~edgegw.energy.outside.OutsideLimits`, the daemon's;
the same as the control op ``energy.limits`` reports)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgegw.live.snapshot import LimitLive, PeakLive

if TYPE_CHECKING:
    from edgegw.energy.outside import OutsideLimits


def limits_live(outside: OutsideLimits | None) -> tuple[LimitLive, ...]:
    if outside is None:
        return ()
    out = []
    for state in outside.external.states.values():
        a, b, c = state.grant.limit_a
        out.append(
            LimitLive(
                name=state.config.name,
                source=state.config.source,
                node=state.config.circuit or "site",
                para14a=state.config.para14a,
                active=state.active,
                since=state.since if state.active else None,
                limit_a=(float(a), float(b), float(c)),
                granted_kw=state.grant.granted_kw,
                chargers=state.grant.chargers,
                last_error=state.last_error,
            )
        )
    return tuple(out)


def peak_live(outside: OutsideLimits | None) -> PeakLive | None:
    if outside is None or outside.peak is None:
        return None
    status = outside.peak.shaver.status()
    return PeakLive(
        month=status.month,
        target_kw=status.target_kw,
        effective_target_kw=status.effective_target_kw,
        month_peak_kw=round(status.month_peak_kw, 3),
        month_peak_at=status.month_peak_at,
        projected_kw=None if status.projected_kw is None else round(status.projected_kw, 3),
        limiting=status.limiting,
        shaved_quarters=status.shaved_quarters,
        shaved_kw_max=round(status.shaved_kw_max, 3),
    )


def outside_signature(limits: tuple[LimitLive, ...], peak: PeakLive | None) -> tuple[Any, ...]:
    """What of them is worth telling the views about when it changes (not the projection,
    which moves with every meter sample)."""
    return (
        tuple((x.name, x.active, x.limit_a, x.last_error) for x in limits),
        None if peak is None else (peak.limiting, peak.month_peak_kw, peak.shaved_quarters),
    )
