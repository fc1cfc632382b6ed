"""``edgegw energy``: the load-capping controller's state and its decision log (CSV or JSON).

The decision log keeps every control round's inputs (meter, sessions) and outputs (budget,
each connector's limit and why). Exported as CSV it is one row per connector per round, so an
installer can plot or filter it in a spreadsheet when a site owner asks "why did my car get
6 A at 18:05?".
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from edgegw.cli import energy_limits
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
from edgegw.control.client import RemoteError

energy_app = typer.Typer(
    help="Load capping: live state and the decision log.", no_args_is_help=True
)

PHASES = ("L1", "L2", "L3")
CSV_COLUMNS = (
    "at",
    "mode",
    *(f"grid_{p}_a" for p in PHASES),
    *(f"non_ev_{p}_a" for p in PHASES),
    *(f"budget_{p}_a" for p in PHASES),
    *(f"used_{p}_a" for p in PHASES),
    "charger",
    "connector",
    "limit_a",
    "reason",
)


def _phases(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) and len(value) == 3 else [None, None, None]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def decisions_csv(decisions: list[dict[str, Any]]) -> str:
    """One row per connector allocation per round; a round with none still gets one row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for d in decisions:
        inputs, outputs = d.get("inputs") or {}, d.get("outputs") or {}
        head = [
            _iso(d["at"]),
            d.get("mode", ""),
            *_phases(inputs.get("grid_a")),
            *_phases(inputs.get("non_ev_a")),
            *_phases(outputs.get("budget_a")),
            *_phases(outputs.get("used_a")),
        ]
        allocations = outputs.get("allocations") or [{}]
        for a in allocations:
            row = [*head, a.get("charger"), a.get("connector"), a.get("limit_a"), a.get("reason")]
            writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def _parse_time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(
            f"cannot read the time {text!r}",
            EXIT_USAGE,
            "use ISO 8601, e.g. 2026-11-21T18:00 (UTC unless an offset is given)",
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _format_a(values: Any) -> str:
    if not isinstance(values, list):
        return "-"
    return " / ".join("-" if v is None else f"{v:.1f}" for v in values)


def _render_state(state: dict[str, Any]) -> str:
    lines = [
        f"mode {state['mode']}   meter {state['meter']}"
        + (f" ({state['meter_age_s']:.1f} s old)" if state.get("meter_age_s") is not None else ""),
        f"limit per phase   {_format_a(state['limit_a'])} A (margin {state['margin_a']:.1f} A)",
        f"grid              {_format_a(state.get('grid_a'))} A",
        f"non-EV load       {_format_a(state.get('non_ev_a'))} A",
        f"EV budget         {_format_a(state.get('budget_a'))} A",
        f"EV used           {_format_a(state.get('used_a'))} A",
    ]
    if state.get("headroom_a") is not None:
        lines.append(f"headroom          {_format_a(state['headroom_a'])} A")
    lines.append("")
    lines += _render_tree(state)
    for meter in state.get("meters", []):
        error = f" — {meter['last_error']}" if meter.get("last_error") else ""
        lines.append(f"meter {meter['name']} ({meter['role']}): {meter['health']}{error}")
    return "\n".join(lines)


def _charger_lines(charger: dict[str, Any], indent: str) -> list[str]:
    flags = f"  [{', '.join(charger['flags'])}]" if charger.get("flags") else ""
    online = "online" if charger["connected"] else "offline"
    lines = [f"{indent}{charger['id']:<16} {online:<8} {charger['model']}{flags}"]
    for s in charger.get("sessions", []):
        limit = "-" if s.get("limit_a") is None else f"{s['limit_a']:.1f} A"
        lines.append(
            f"{indent}  connector {s['connector']}: {s['status']:<12} limit {limit:<8} "
            f"offered {s['offered_a']:.1f} A  measured {_format_a(s.get('measured_a'))} A"
            f"  ({s['reason']})"
        )
    return lines


def _render_tree(state: dict[str, Any]) -> list[str]:
    """The site's boards, each below its parent with its chargers under it; chargers on the
    site itself at the end. A board's chargers come from the live snapshot (``chargers``
    merged in by :func:`_with_tree`); without it the boards and chargers are listed flat."""
    circuits = state.get("circuits") or []
    chargers = {c["id"]: c for c in state.get("chargers", [])}
    names = {c["name"] for c in circuits}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for circuit in circuits:
        parent = circuit.get("parent") if circuit.get("parent") in names else None
        children.setdefault(parent, []).append(circuit)
    lines: list[str] = []
    placed: set[str] = set()
    seen: set[str] = set()

    def board(circuit: dict[str, Any], depth: int) -> None:
        if circuit["name"] in seen:
            return
        seen.add(circuit["name"])
        indent = "  " * depth
        parent = circuit.get("parent") or "site"
        lines.append(
            f"{indent}circuit {circuit['name']} (under {parent}): limit "
            f"{_format_a(circuit['limit_a'])} A (margin {circuit['margin_a']:.1f} A), "
            f"allocated {_format_a(circuit.get('used_a'))} A, "
            f"headroom {_format_a(circuit.get('headroom_a'))} A"
        )
        if circuit.get("fallback"):
            lines.append(f"{indent}  board meter lost: its chargers share its fallback current")
        elif circuit.get("measured_a") is not None:
            age = circuit.get("meter_age_s")
            read = "" if age is None else f", read {age:.0f} s ago"
            other = circuit.get("other_a")
            others = "" if other is None else f"; other load {_format_a(other)} A"
            lines.append(
                f"{indent}  board meter {_format_a(circuit['measured_a'])} A{read}{others}"
            )
        elif circuit.get("load_a") is not None:
            lines.append(f"{indent}  its chargers draw {_format_a(circuit['load_a'])} A")
        if circuit.get("meter_hold"):
            lines.append(
                f"{indent}  board meter's last read failed: no charger under it is raised "
                "until it reads again"
            )
        for child in children.get(circuit["name"], []):
            board(child, depth + 1)
        for charger_id in circuit.get("chargers") or []:
            if charger_id in chargers:
                placed.add(charger_id)
                lines.extend(_charger_lines(chargers[charger_id], "  " * (depth + 1)))

    for top in children.get(None, []):
        board(top, 0)
    if circuits:
        lines.append("")
    rest = [c for cid, c in chargers.items() if cid not in placed]
    if rest and placed:
        lines.append("on the site itself:")
    for charger in rest:
        lines += _charger_lines(charger, "  " if placed else "")
    return lines


def _with_tree(state: dict[str, Any], snapshot: Any) -> dict[str, Any]:
    """The controller's state with each circuit's chargers and load from the live snapshot."""
    live = snapshot.get("circuits") if isinstance(snapshot, dict) else None
    if not isinstance(live, list):
        return state
    by_name = {c.get("name"): c for c in live if isinstance(c, dict)}
    for circuit in state.get("circuits") or []:
        extra = by_name.get(circuit.get("name"), {})
        for key in ("chargers", "load_a", "measured_a"):
            circuit.setdefault(key, extra.get(key))
    return state


@energy_app.command("state")
def state(*, config: ConfigOption = DEFAULT_CONFIG_PATH, json_mode: JsonOption = False) -> None:
    """What the controller sees and decided last: per phase, per circuit (the tree of boards
    with each one's limit, allocation and headroom) and per charger."""
    cfg = load_config_or_fail(config, json_mode=json_mode)
    with control_errors(json_mode=json_mode):
        client = control_client(cfg)
        answer = client.call("energy.state")
        if answer.get("circuits"):
            with contextlib.suppress(RemoteError):  # an older daemon: boards listed flat
                answer = _with_tree(answer, client.call("live.snapshot"))
    emit(answer, json_mode, _render_state)


@energy_app.command("decisions")
def decisions(
    *,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO 8601); default: the newest rounds.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to this time (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(help="Most rounds to export.", min=1)] = 3600,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
) -> None:
    """Export the load-capping decision log (one CSV row per connector per round)."""
    if fmt not in ("csv", "json"):
        fail(f"unknown format {fmt!r}", EXIT_USAGE, "use --format csv or --format json")
    json_mode = fmt == "json"
    cfg = load_config_or_fail(config, json_mode=json_mode)
    args: dict[str, Any] = {}
    if since is not None:
        args["since"] = _parse_time(since)
    if until is not None:
        args["until"] = _parse_time(until)
    rounds: list[dict[str, Any]] = []
    with control_errors(json_mode=json_mode):
        client = control_client(cfg)
        while len(rounds) < limit:
            page = client.call("energy.decisions", limit=min(limit - len(rounds), 1000), **args)
            rounds.extend(page["decisions"])
            if not page.get("next_since") or not page["decisions"]:
                break
            args["since"] = page["next_since"]
    text = decisions_csv(rounds) if fmt == "csv" else json.dumps(rounds, ensure_ascii=False) + "\n"
    write_output(text, output)
    if output is not None:
        note(f"wrote {len(rounds)} round(s) to {output}")


energy_limits.register(energy_app)  # para14a export, peak, limits
