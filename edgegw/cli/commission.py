"""``edgegw chargers probe | configure`` and ``edgegw commission``: a charger on site, live.

All three ask the running daemon (the ``chargers.probe``, ``chargers.configure`` and
``commission.run`` ops of :mod:`edgegw.control.commission_ops`), because only the daemon
talks to the chargers; without it they exit 4 and say how to start it.

- ``probe`` shows what the charger says it supports and which ``hardware/chargers/`` profile
  fits; ``--write-profile PATH`` writes the profile built from the probe (a file, whose name
  becomes the profile id, or a directory) for the installer to review.
- ``configure`` sets the meter values the gateway needs and shows what the charger refused.
- ``commission`` runs the checklist and prints a pass/fail report, saved for the site's
  records as text and JSON (``--output DIR``, default ``commissioning/`` next to the store),
  file names ``<charger>-<UTC date and time>``.

Exit codes: 0 all passed (done), 1 a step failed or the charger refused, 2 bad option,
3 bad configuration, 4 daemon not running.
"""

from __future__ import annotations

import json
import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_FAILURE,
    EXIT_USAGE,
    ChargerArgument,
    ConfigOption,
    JsonOption,
    control_client,
    control_errors,
    emit,
    fail,
    load_config_or_fail,
    note,
    plural,
)
from edgegw.commission.probe201 import REPORT_TIMEOUT
from edgegw.control.commission_ops import (
    CALL_TIMEOUT,
    DEFAULT_INTERVAL_S,
    STEP_TIMEOUT,
    TAP_TIMEOUT,
)
from edgegw.energy.chargermodels import ChargerModelError, load_model
from edgegw.hardware_catalogue import HardwareCatalogue

_PROFILE_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_MARK = {"pass": "PASS", "fail": "FAIL", "skip": "skip"}
_WIDTH = 100
_INDENT = " " * 7


def register_probe_commands(chargers_app: typer.Typer) -> None:
    """Add ``probe`` and ``configure`` to the ``edgegw chargers`` sub-app."""
    chargers_app.command("probe")(probe)
    chargers_app.command("configure")(configure)


def register_commission(app: typer.Typer) -> None:
    """Add ``commission`` to the ``edgegw`` command."""
    app.command("commission")(commission)


# ------------------------------------------------------------------------------ probe


def probe(
    charger: ChargerArgument,
    *,
    write_profile: Annotated[
        Path | None,
        typer.Option(
            "--write-profile",
            help="Write the probed profile to this .toml file (its name is the profile id) "
            "or into this directory; the site's folder (<hardware_dir>/chargers, default "
            "/etc/edgegw/hardware/chargers) is where the daemon and the CLI find it.",
        ),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Ask a connected charger what it supports and which hardware profile fits.

    Reads every configuration key (GetConfiguration; an OCPP 2.x station: its device model,
    GetBaseReport), records the charger's capabilities, and with --write-profile writes a
    profile built from them for you to review.
    """
    cfg = load_config_or_fail(config, json_mode=as_json)
    site_folder = HardwareCatalogue.for_config(cfg).site_folder("chargers")
    if write_profile is not None and write_profile == site_folder:
        write_profile.mkdir(parents=True, exist_ok=True)  # the first profile of the site
    target, profile_id = _profile_target(write_profile, as_json)
    args: dict[str, Any] = {"charger": charger}
    if profile_id is not None:
        args["profile_id"] = profile_id
    with control_errors(json_mode=as_json):
        # A 2.x station's report may take REPORT_TIMEOUT after its GetBaseReport answer.
        client = control_client(cfg, timeout=CALL_TIMEOUT + REPORT_TIMEOUT + 10)
        result = client.call("chargers.probe", **args)
    if target is not None:
        proposed = result["proposed_profile"]
        path = target / f"{proposed['id']}.toml" if profile_id is None else target
        _write_profile(path, proposed["toml"], as_json)
        result["written"] = str(path)
    result["site_folder"] = str(site_folder)
    emit(result, as_json, _render_probe)


def _profile_target(path: Path | None, json_mode: bool) -> tuple[Path | None, str | None]:
    """Where ``--write-profile`` writes, and the profile id its file name sets (None: the
    proposed id, in a directory)."""
    if path is None:
        return None, None
    if path.is_dir():
        return path, None
    if path.suffix != ".toml":
        fail(
            f"--write-profile {path}: give a .toml file or an existing directory",
            EXIT_USAGE,
            json_mode=json_mode,
        )
    if not _PROFILE_ID.fullmatch(path.stem):
        fail(
            f"--write-profile {path}: the file name is the profile id; use lowercase letters, "
            "digits and '-' (e.g. acme-home.toml)",
            EXIT_USAGE,
            json_mode=json_mode,
        )
    if path.exists():
        fail(
            f"--write-profile {path}: the file exists; choose another name or remove it first",
            EXIT_USAGE,
            json_mode=json_mode,
        )
    if not path.parent.is_dir():
        fail(f"--write-profile {path}: no directory {path.parent}", EXIT_USAGE, json_mode=json_mode)
    return path, path.stem


def _write_profile(path: Path, text: str, json_mode: bool) -> None:
    if path.exists():
        fail(
            f"{path} exists; choose another name with --write-profile FILE.toml",
            EXIT_USAGE,
            json_mode=json_mode,
        )
    try:
        path.write_text(text, encoding="utf-8")
        load_model(path)  # the file must be usable as it is written
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}", EXIT_FAILURE, json_mode=json_mode)
    except ChargerModelError as exc:
        fail(f"the written profile does not load: {exc}", EXIT_FAILURE, json_mode=json_mode)


def _yes_no(value: Any) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def _render_probe(r: dict[str, Any]) -> str:
    cid = r["charger"]
    who = " ".join(x for x in (r.get("vendor"), r.get("model")) if x) or "vendor/model unknown"
    lines = [f"{cid}: {who} (serial {r.get('serial') or '?'}, firmware {r.get('firmware') or '?'})"]
    v2 = "evses" in r  # a 2.x device model (GetBaseReport), not 1.6 configuration keys
    if v2:
        report = r.get("report") or {}
        whole = "complete" if report.get("complete") else "INCOMPLETE (parts missing)"
        lines.append(
            f"  Device model:     OCPP 2.0.1, {report.get('parts', '?')} report part(s), {whole}"
        )
        if report.get("missing"):
            lines.append(f"                    missing: {report['missing']}")
    else:
        lines.append(f"  Feature profiles: {', '.join(r['feature_profiles']) or 'not reported'}")
    sc = r["smart_charging"]
    smart = _yes_no(sc["supported"])
    if sc["supported"]:
        smart += (
            f" — stack levels 0..{sc['max_stack_level']}, units "
            f"{', '.join(sc['rate_units']) or '?'}"
            + (f" ({sc['rate_units_raw']})" if sc.get("rate_units_raw") else "")
            + ", "
            f"{sc['max_periods']} period(s), {sc['max_profiles']} profile(s)"
        )
        if sc["phase_switching"] is not None:
            smart += f", 3->1 phase switching {_yes_no(sc['phase_switching'])}"
    lines.append(f"  Smart charging:   {smart}")
    ll = r["local_list"]
    local = _yes_no(ll["supported"])
    if ll["supported"]:
        local += (
            f" — {plural(ll['max_length'], 'entry', 'entries')}, "
            f"{ll['send_max_length']} per SendLocalList"
        )
    lines.append(f"  Local list:       {local}")
    mv = r["meter_values"]
    sampled = ", ".join(mv["sampled_data"] or []) or "nothing"
    every = mv["sample_interval_s"]
    lines.append(
        f"  Meter values:     {sampled}"
        + (f" every {every} s" if every else " (no periodic samples)")
        + (
            f"; at most {mv['sampled_data_max_length']}"
            if mv.get("sampled_data_max_length")
            else ""
        )
    )
    if mv["samples_current"] is False:
        lines.append(
            f"                    no Current.Import: run `edgegw chargers configure {cid}`"
        )
    lines.append(
        f"  Connectors:       {r['connectors'] or '?'}; phase rotation "
        f"{r['phase_rotation'] or 'not reported'}"
    )
    for evse in r.get("evses") or []:
        power = evse.get("max_power_w")
        phases = evse.get("supply_phases")
        lines.append(
            f"    EVSE {evse['evse']}: connector(s) "
            f"{', '.join(str(c) for c in evse.get('connectors') or []) or '?'}"
            + (f", up to {power / 1000:g} kW" if power else "")
            + (f", {phases} phase(s)" if phases else "")
        )
    if r["missing_keys"]:
        what = "Variables" if v2 else "Keys"
        lines.append(f"  {what} it should report but did not: {', '.join(r['missing_keys'])}")
    profile = r["profile"]
    if profile["fits"]:
        how = "vendor and product" if profile["match"] == "product" else "vendor only: check it"
        line = f"  Hardware profile: {profile['fits']} fits ({how})"
        if len(profile["candidates"]) > 1:
            line += f"; also: {', '.join(profile['candidates'][1:])}"
        lines.append(line)
        if profile["configured"] and profile["configured"] != profile["fits"]:
            lines.append(f"                    but the configuration says {profile['configured']}")
        for difference in profile["differences"]:
            lines.append(f"                    differs: {difference}")
    else:
        where = r.get("site_folder", "/etc/edgegw/hardware/chargers")
        lines.append(
            "  Hardware profile: none fits; the generic profile applies. Keep a probed one: "
            f"`edgegw chargers probe {cid} --write-profile {where}/"
            f"{r['proposed_profile']['id']}.toml`"
        )
    if r.get("written"):
        lines.append(
            f"Wrote {r['written']}: review it (traits no key tells were taken from "
            f'{r["proposed_profile"]["base"]}), then set model = "{Path(r["written"]).stem}" '
            "for the charger"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ configure


def configure(
    charger: ChargerArgument,
    *,
    interval: Annotated[
        int,
        typer.Option("--interval", min=1, max=3600, help="MeterValueSampleInterval (s)."),
    ] = DEFAULT_INTERVAL_S,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Set the meter values the gateway needs, and report what the charger refused.

    Adds Current.Import, Current.Offered, Energy.Active.Import.Register and
    Power.Active.Import to MeterValuesSampledData (keeping what is there) and sets
    MeterValueSampleInterval, with ChangeConfiguration.
    """
    cfg = load_config_or_fail(config, json_mode=as_json)
    with control_errors(json_mode=as_json):
        client = control_client(cfg, timeout=4 * CALL_TIMEOUT + 10)
        result = client.call("chargers.configure", charger=charger, interval=interval)
    emit(result, as_json, _render_configure)
    if not result["ok"]:
        raise typer.Exit(EXIT_FAILURE)


def _render_configure(r: dict[str, Any]) -> str:
    rows = [(k["key"], k["status"], k["detail"]) for k in r["keys"]]
    width = max(len(k) for k, _s, _d in rows)
    lines = [f"{r['charger']}: meter values"]
    lines += [f"  {k.ljust(width)}  {s:<14}  {d}" for k, s, d in rows]
    if r["reboot_required"]:
        lines.append("Restart the charger for the new values to take effect.")
    if not r["ok"]:
        consequence = (
            "load capping still sees its cars' currents"
            if r["samples_current"]
            else "without Current.Import load capping counts its cars at their limits"
        )
        lines.append(
            f"The charger refused part of it; {consequence}. Check its own settings (web "
            "interface or app) for meter values."
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ commission


def commission(
    charger: ChargerArgument,
    *,
    card: Annotated[
        str | None, typer.Option("--card", help="A test card (UID as printed or read).")
    ] = None,
    tap: Annotated[
        bool, typer.Option("--tap", help="Wait for a card to be tapped at the charger.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="Directory for the report files (default: commissioning/ next to the store).",
        ),
    ] = None,
    step_timeout: Annotated[
        float, typer.Option("--step-timeout", min=0.1, max=600, help="Wait per step (s).")
    ] = STEP_TIMEOUT,
    tap_timeout: Annotated[
        float, typer.Option("--tap-timeout", min=0.1, max=3600, help="Wait for a tap (s).")
    ] = TAP_TIMEOUT,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Run the commissioning checklist against a live charger and save the report.

    Checks: connected, boot accepted, heartbeat, status per connector, meter values with
    per-phase current, a charging profile accepted and honoured, a test card. The pass/fail
    report is printed and saved as text and JSON for the site's records.
    """
    cfg = load_config_or_fail(config, json_mode=as_json)
    directory = output or cfg.store.path.parent / "commissioning"
    args: dict[str, Any] = {
        "charger": charger,
        "tap": tap,
        "step_timeout": step_timeout,
        "tap_timeout": tap_timeout,
    }
    if card is not None:
        args["card"] = card
    budget = 12 * (step_timeout + CALL_TIMEOUT) + (tap_timeout if tap else 0)
    with control_errors(json_mode=as_json):
        client = control_client(cfg, timeout=budget)
        if tap and not as_json:
            note(
                f"Tap {'the test card' if card else 'a card'} at {charger} while the checklist "
                f"runs (it waits up to {tap_timeout:.0f} s at the end)."
            )
        report = client.call("commission.run", **args)
    text = render_report(report)
    try:
        files = save_report(report, text, directory)
    except OSError as exc:
        emit(report, as_json, lambda _r: text)
        fail(
            f"the report could not be saved in {directory}: {exc.strerror or exc}",
            EXIT_FAILURE,
            "choose a writable directory with --output DIR (or run with sudo)",
            json_mode=False,
        )
    report["files"] = [str(f) for f in files]
    emit(report, as_json, lambda _r: f"{text}\nSaved: {', '.join(report['files'])}")
    if not report["passed"]:
        raise typer.Exit(EXIT_FAILURE)


def report_stem(report: dict[str, Any]) -> str:
    """``<charger>-<YYYY-MM-DD>T<HHMMSS>Z``: sorts by date, safe in any file system."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", report["charger"])
    when = datetime.fromtimestamp(report["started_at"], UTC).strftime("%Y-%m-%dT%H%M%SZ")
    return f"{safe}-{when}"


def save_report(report: dict[str, Any], text: str, directory: Path) -> list[Path]:
    """Write the report as ``.txt`` and ``.json`` into ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = report_stem(report)
    text_path = directory / f"{stem}.txt"
    json_path = directory / f"{stem}.json"
    text_path.write_text(text + "\n", encoding="utf-8")
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return [text_path, json_path]


def render_report(r: dict[str, Any]) -> str:
    """The report as the installer reads it (and as it is filed)."""
    started = datetime.fromtimestamp(r["started_at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    info = r["charger_info"]
    who = " ".join(x for x in (info.get("vendor"), info.get("model")) if x) or "unknown charger"
    lines = [
        f"Commissioning of {r['charger']} — {started} ({r['duration_s']:.1f} s)",
        f"Charger: {who}, serial {info.get('serial') or '?'}, firmware "
        f"{info.get('firmware') or '?'}, address {info.get('address') or '?'}",
        f"Hardware profile: {info['hardware_profile']}; load capping "
        f"{'on' if r['load_capping'] else 'off'}"
        + (f"; test card {r['card']}" if r.get("card") else ""),
        "",
    ]
    for step in r["steps"]:
        mark = _MARK.get(step["status"], step["status"])
        lines.append(f"[{mark}] {step['title']:<28} {step['duration_s']:6.2f} s")
        if step["detail"]:
            lines.append(
                textwrap.fill(
                    step["detail"],
                    _WIDTH,
                    initial_indent=_INDENT,
                    subsequent_indent=_INDENT,
                    break_on_hyphens=False,
                )
            )
        if step["hint"] and step["status"] != "pass":
            lines.append(
                textwrap.fill(
                    f"→ {step['hint']}",
                    _WIDTH,
                    initial_indent=_INDENT,
                    subsequent_indent=_INDENT + "  ",
                    break_on_hyphens=False,
                )
            )
    counts = r["counts"]
    verdict = "PASSED" if r["passed"] else "FAILED"
    lines += [
        "",
        f"Result: {verdict} — {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['skip']} skipped",
    ]
    return "\n".join(lines)
