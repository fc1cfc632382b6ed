"""What a configuration reload may change while the daemon runs, and what needs a restart.

``edgegw chargers add|remove|set-password|approve`` edit the file and ask the daemon to reload
(control op ``config.reload``, or SIGHUP from ``systemctl reload edgegw``). A reload applies a
new file only when every difference is safe to take live:

* chargers added or removed (a removed charger's connection is closed), on a load-capped site
  too: the controller takes a new charger live (its safe profile on connect, then its share)
  and gives a removed one's share back to the others (``LoadController.use_config``); a new
  charger's model, idTag format and free-charging tag go to the card authority at once;
* a charger's password, label, security profile, certificate CN and cloud credentials (they are
  read on each new connection; the current connection stays up);
* circuits (``[[circuits]]``) added, removed or changed, and a charger moved to another circuit
  (``circuit``): the next load-capping round takes the new tree (a lowered limit cuts at once).
  Except a board's meter: adding, removing or changing a circuit's ``meter`` or ``meter_role``
  needs a restart, because each meter is polled by a task started with the daemon (a board
  would otherwise follow a meter nobody reads, and fall back for good).

Anything else (listeners, the cloud URL, the site, meters, a charger's energy or card settings)
is read once at start by other parts. Such a file is not applied at all, and the answer names
what needs ``systemctl restart edgegw``: a half-applied configuration would be worse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgegw.config import ChargerConfig, Config

LIVE_CHARGER_FIELDS = frozenset(
    {
        "label",
        "password_hash",
        "security_profile",
        "certificate_cn",
        "cloud_username",
        "cloud_password",
        "cloud_tls_cert_file",
        "cloud_tls_key_file",
        "circuit",
    }
)

LIVE_SECTIONS = frozenset({"chargers", "circuits"})
"""Sections compared item by item; any other difference needs a restart."""


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The difference between the running configuration and the file."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)
    circuits: list[str] = field(default_factory=list)
    """What changed in the circuits, one line each (applied live)."""

    @property
    def applicable(self) -> bool:
        return not self.needs_restart

    @property
    def empty(self) -> bool:
        return not (
            self.added or self.removed or self.changed or self.needs_restart or self.circuits
        )

    def message(self) -> str:
        if self.empty:
            return "the configuration file has no changes"
        if self.needs_restart:
            return (
                "not applied: "
                + "; ".join(self.needs_restart)
                + " (run `sudo systemctl restart edgegw` to apply the file)"
            )
        parts = []
        for what, ids in (("added", self.added), ("removed", self.removed)):
            if ids:
                parts.append(f"{what} {', '.join(ids)}")
        if self.changed:
            parts.append(f"updated {', '.join(self.changed)}")
        parts.extend(self.circuits)
        return "applied: " + "; ".join(parts)


def plan_reload(running: Config, new: Config) -> ReloadPlan:
    """Compare ``new`` with ``running``."""
    restart: list[str] = []
    for name in type(running).model_fields:
        if name not in LIVE_SECTIONS and getattr(running, name) != getattr(new, name):
            restart.append(f"[{name}] changed")
    circuits = _circuit_changes(running, new, restart)
    old = {c.id: c for c in running.chargers}
    fresh = {c.id: c for c in new.chargers}
    added = [cid for cid in fresh if cid not in old]
    removed = [cid for cid in old if cid not in fresh]
    changed: list[str] = []
    for cid in fresh.keys() & old.keys():
        fields = _changed_fields(old[cid], fresh[cid])
        if not fields:
            continue
        live = fields <= LIVE_CHARGER_FIELDS
        if live:
            changed.append(cid)
        else:
            restart.append(f"{cid}: {', '.join(sorted(fields - LIVE_CHARGER_FIELDS))} changed")
    return ReloadPlan(sorted(added), sorted(removed), sorted(changed), restart, circuits)


def _circuit_changes(running: Config, new: Config, restart: list[str]) -> list[str]:
    """One line per circuit added, removed or changed; a board's meter changed goes to
    ``restart``."""
    old = {c.name: c for c in running.circuits}
    fresh = {c.name: c for c in new.circuits}
    lines: list[str] = []
    for name in sorted(fresh.keys() | old.keys()):
        before, after = old.get(name), fresh.get(name)
        meter_before = (None, None) if before is None else (before.meter, before.metered_as)
        meter_after = (None, None) if after is None else (after.meter, after.metered_as)
        metered = meter_before[0] is not None or meter_after[0] is not None
        if metered and meter_before != meter_after:
            restart.append(
                f"circuit {name}: its meter changed (each meter is polled by a task started "
                "with edgegw)"
            )
        elif before is None:
            lines.append(f"circuit {name} added")
        elif after is None:
            lines.append(f"circuit {name} removed")
        elif before != after:
            fields = sorted(
                k for k in type(after).model_fields if getattr(before, k) != getattr(after, k)
            )
            lines.append(f"circuit {name}: {', '.join(fields)} changed")
    return lines


def _changed_fields(old: ChargerConfig, new: ChargerConfig) -> set[str]:
    return {name for name in type(old).model_fields if getattr(old, name) != getattr(new, name)}
