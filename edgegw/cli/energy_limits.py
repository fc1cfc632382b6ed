"""``edgegw energy para14a export``, ``energy peak`` and ``energy limits``: the limits from
outside (``[[limits]]``, §14a EnWG, ``[peak]``).

The §14a export reads the database directly (read-only), so it works with the daemon stopped,
for a grid operator's or an auditor's request: one CSV row per activation with its start, end
and the power granted. ``peak`` and ``limits`` ask the running daemon.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    control_client,
    control_errors,
    emit,
    fail,
    load_config_or_fail,
    note,
    write_output,
)
from edgegw.store.db import StoreError
from edgegw.store.limitlog import SCHEMA_NEEDED, Activation, activations, activations_csv
from edgegw.store.readonly import open_read_only

para14a_app = typer.Typer(
    help="§14a EnWG: the grid operator's dimming, as the gateway logged it.", no_args_is_help=True
)


def _parse_time(text: str) -> float:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"cannot read the time {text!r}", EXIT_USAGE, "use ISO 8601, e.g. 2026-12-01T00:00Z")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


async def _read(
    path: Path, *, para14a_only: bool, since: float | None, until: float | None
) -> list[Activation]:
    async with open_read_only(path) as conn:
        async with conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        if row is None or int(row[0]) < SCHEMA_NEEDED:
            raise StoreError(
                f"{path} predates the activation log (schema {SCHEMA_NEEDED}): start the daemon "
                "once to upgrade it"
            )
        return await activations(conn, para14a_only=para14a_only, since=since, until=until)


@para14a_app.command("export")
def export(
    *,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    csv_format: Annotated[bool, typer.Option("--csv/--json", help="CSV (default) or JSON.")] = True,
    since: Annotated[
        str | None, typer.Option(help="Activations started from this time (ISO 8601).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="...and before this time.")] = None,
    every_limit: Annotated[
        bool, typer.Option("--all", help="Every external limit's activations, not only §14a.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
) -> None:
    """Export the §14a activations: start, end, power granted (kept two years)."""
    cfg = load_config_or_fail(config, json_mode=not csv_format)
    try:
        rows = asyncio.run(
            _read(
                cfg.store.path,
                para14a_only=not every_limit,
                since=None if since is None else _parse_time(since),
                until=None if until is None else _parse_time(until),
            )
        )
    except StoreError as exc:
        fail(str(exc), json_mode=not csv_format)
    if csv_format:
        text = activations_csv(rows)
    else:
        text = json.dumps([row.as_dict() for row in rows], ensure_ascii=False) + "\n"
    write_output(text, output)
    if output is not None:
        note(f"wrote {len(rows)} activation(s) to {output}")


def _render_peak(answer: dict[str, Any]) -> str:
    peak = answer.get("peak")
    if peak is None:
        return "peak shaving is not configured (no [peak] section)\n"

    def when(ts: Any) -> str:
        if ts is None:
            return "-"
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M UTC")

    lines = [
        f"month {peak['month'] or '-'}: peak {peak['month_peak_kw']:.2f} kW "
        f"(quarter-hour from {when(peak['month_peak_at'])})",
        f"target {peak['target_kw']:g} kW, held to {peak['effective_target_kw']:.2f} kW",
        f"this quarter-hour (from {when(peak['quarter_start'])}): "
        f"{peak['quarter_energy_kwh']:.3f} kWh so far, heading for "
        + ("-" if peak["projected_kw"] is None else f"{peak['projected_kw']:.2f} kW")
        + (", chargers limited" if peak["limiting"] else ""),
        f"shaved: {peak['shaved_quarters']} quarter-hour(s) this month, "
        f"at most {peak['shaved_kw_max']:.2f} kW off one",
    ]
    return "\n".join(lines) + "\n"


def _render_limits(answer: dict[str, Any]) -> str:
    rows = answer.get("limits") or []
    if not rows:
        return "no external limits configured ([[limits]])\n"
    lines = []
    for s in rows:
        what = f"§14a {s['granted_kw']:g} kW for {s['chargers']}" if s["para14a"] else "limit"
        state = "ACTIVE" if s["active"] else "released"
        if s["restored"]:
            state += " (held from before the restart, not read yet)"
        amps = "/".join(f"{a:g}" for a in s["limit_a"])
        error = f"  [cannot read: {s['last_error']}]" if s["last_error"] else ""
        lines.append(
            f"{s['name']:<12} {s['source']:<7} {s['node']:<12} {what} {amps} A  {state}{error}"
        )
    return "\n".join(lines) + "\n"


def peak(*, config: ConfigOption = DEFAULT_CONFIG_PATH, json_mode: JsonOption = False) -> None:
    """Peak shaving: the month's peak, the running quarter-hour, what was shaved."""
    cfg = load_config_or_fail(config, json_mode=json_mode)
    with control_errors(json_mode=json_mode):
        answer = control_client(cfg).call("energy.limits")
    emit(answer.get("peak") if json_mode else answer, json_mode, _render_peak)


def limits(*, config: ConfigOption = DEFAULT_CONFIG_PATH, json_mode: JsonOption = False) -> None:
    """External limits: each [[limits]] signal, active or not, and what it lowers."""
    cfg = load_config_or_fail(config, json_mode=json_mode)
    with control_errors(json_mode=json_mode):
        answer = control_client(cfg).call("energy.limits")
    emit(answer.get("limits") if json_mode else answer, json_mode, _render_limits)


def register(app: typer.Typer) -> None:
    """Add these commands to ``edgegw energy``."""
    app.add_typer(para14a_app, name="para14a")
    app.command("peak")(peak)
    app.command("limits")(limits)
