"""``edgegw chargers``: the site's chargers — list, show, add, remove, passwords, approval.

``list``, ``show`` and ``pending`` join the configuration with what the gateway saw (the
daemon's view when it runs, else its store). ``add``, ``remove``, ``set-password`` and
``approve`` edit the configuration file, keeping the installer's comments and layout
(:mod:`edgegw.cli.configfile`): the file is validated before it is written, written atomically,
and keeps its mode and owner. Passwords are read from a hidden prompt or a file, stored only as
scrypt hashes, and never printed.

The daemon reads its configuration when it starts. After an edit the command asks a running
daemon to reload (the ``config.reload`` op); a daemon without that op is to be restarted, and
the command says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError

from edgegw.auth.idtags import IdTagFormat
from edgegw.auth.passwords import hash_password
from edgegw.cli.backend import (
    Backend,
    StoreBackend,
    answered,
    call_op,
    daemon_or_store,
    op_errors,
)
from edgegw.cli.configfile import ConfigFile, ConfigFileError, EditRefused
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_USAGE,
    START_HINT,
    ChargerArgument,
    ConfigOption,
    JsonOption,
    control_client,
    emit,
    fail,
    table,
)
from edgegw.config import CHARGER_ID_PATTERN, Config, ConfigError, parse_config
from edgegw.control.charger_ops import ChargerService
from edgegw.control.client import (
    ControlClientError,
    DaemonNotRunning,
    PermissionDenied,
    RemoteError,
)
from edgegw.control.protocol import ErrorCode
from edgegw.hardware_catalogue import HardwareCatalogue, HardwareError
from edgegw.store.cards import CardStore
from edgegw.store.store import Store

chargers_app = typer.Typer(
    help="The site's chargers: list, show, add, set, remove, set-password, pending, approve.",
    no_args_is_help=True,
)

MIN_PASSWORD = 8
OCPP_PASSWORD = (16, 40)  # AuthorizationKey length the OCPP 1.6 security whitepaper asks for
RESTART = "sudo systemctl restart edgegw"

PasswordPromptOption = Annotated[
    bool,
    typer.Option("--password-prompt", help="Type the charger's Basic-auth password (hidden)."),
]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help="Read the password from this file (first line); keeps it out of shell history.",
    ),
]


def _complete_model(incomplete: str) -> list[str]:
    try:
        models = HardwareCatalogue.for_config_file(DEFAULT_CONFIG_PATH).files("chargers")
    except HardwareError:
        return []
    return [name for name in models if name.startswith(incomplete)]


def _complete_format(incomplete: str) -> list[str]:
    return [f.value for f in IdTagFormat if f.value.startswith(incomplete)]


ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Charger model: a chargers/<model>.toml shipped or in the site's hardware_dir.",
        autocompletion=_complete_model,
    ),
]
LabelOption = Annotated[str | None, typer.Option("--label", help="Name shown to caretakers.")]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--idtag-format",
        help="How it reports card UIDs (default: its model's, or auto).",
        autocompletion=_complete_format,
    ),
]
MinCurrentOption = Annotated[
    float | None, typer.Option("--min-current", help="Lowest current (A).")
]
MaxCurrentOption = Annotated[
    float | None, typer.Option("--max-current", help="Highest current (A).")
]
FallbackOption = Annotated[
    float | None,
    typer.Option("--fallback-current", help="Its share while the meter is lost (A; 0 = pause)."),
]
PriorityOption = Annotated[str | None, typer.Option("--priority", help="normal or vip.")]
PhasesOption = Annotated[
    str | None,
    typer.Option("--phases", help="Site phases its L1..L3 are wired to, e.g. L1L2L3, L2L3L1, L2."),
]


# ------------------------------------------------------------------------------ backends


class _ChargerStore(StoreBackend):
    """The daemon's store opened by the CLI, answered by the same :class:`ChargerService`."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._store: Store | None = None
        self._service: ChargerService | None = None

    def call(self, op: str, /, **args: Any) -> Any:
        service = self.run(self._open())
        return self.run(service.run(op, args))

    async def _open(self) -> ChargerService:
        if self._service is None:
            self._store = await Store.open(self.store_path(create=False))
            self.touched = True
            detected = await CardStore(self._store.db).detected_formats()
            self._service = ChargerService(self.config, self._store, detected=detected.get)
        return self._service

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()


def backend(config: Config, json_mode: bool) -> AbstractContextManager[Backend]:
    """The running daemon, else the store (said on stderr)."""
    return daemon_or_store(
        config,
        json_mode,
        _ChargerStore,
        notice=f"edgegw is not running: reading its store {config.store.path} directly",
    )


# ------------------------------------------------------------------------------ reading


@chargers_app.command("list")
def list_chargers(config: ConfigOption = DEFAULT_CONFIG_PATH, as_json: JsonOption = False) -> None:
    """The configured chargers: connected or not, OCPP version, model, idTag format, last seen."""
    emit(_read(config, as_json, "chargers.list", live=True), as_json, _render_list)


@chargers_app.command("show")
def show_charger(
    charger: ChargerArgument,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """One charger: configuration, what it reported, OCPP version, connectors (a 2.x
    charger's EVSEs), idTag format, local list."""
    emit(
        _read(config, as_json, "chargers.show", live=True, charger=charger),
        as_json,
        _render_show,
    )


@chargers_app.command("pending")
def pending_chargers(
    config: ConfigOption = DEFAULT_CONFIG_PATH, as_json: JsonOption = False
) -> None:
    """Identities that tried to connect and were refused: approve them, or give a password.

    Also lists connections refused for a wrong URL (``/ocpp``, ``/CP-1``, ``/ocpp/CP-1/CP-1``)
    with the URL the charger should use."""
    with backend(_config(config, as_json), as_json) as used, op_errors(as_json):
        result = answered(used, {"pending": used.call("chargers.pending")})
        result["wrong_urls"] = _optional(used, "chargers.wrong_urls")
    emit(result, as_json, _render_pending)


def _optional(used: Backend, op: str) -> list[dict[str, Any]]:
    """``op``'s answer, or nothing from a daemon too old to have it."""
    return list(_optional_answer(used, op) or [])


def _read(
    config_path: Path,
    json_mode: bool,
    op: str,
    *,
    key: str | None = None,
    live: bool = False,
    **args: Any,
) -> dict[str, Any]:
    """The command's result for ``op``, from the daemon or the store (under ``key`` when
    the answer is not an object); with ``live``, each charger also gets what only the running
    daemon knows (:func:`_live_facts`)."""
    if not live:
        return call_op(
            backend(_config(config_path, json_mode), json_mode), json_mode, op, key=key, **args
        )
    with backend(_config(config_path, json_mode), json_mode) as used, op_errors(json_mode):
        result = answered(used, used.call(op, **args))
        snapshot = _optional_answer(used, "live.snapshot") if used.source == "daemon" else None
    for charger in result.get("chargers", [result]):
        charger.update(_live_facts(snapshot, charger["id"]))
    return result


def _optional_answer(used: Backend, op: str) -> Any:
    """``op``'s answer, or None from a daemon too old to have it."""
    try:
        return used.call(op)
    except RemoteError as exc:
        if exc.code == ErrorCode.UNKNOWN_OP:
            return None
        raise


def _live_facts(snapshot: Any, charger_id: str) -> dict[str, Any]:
    """The OCPP version of a charger's connection and its circuit, from the daemon's live
    snapshot (None without the daemon: the store does not keep the version)."""
    found = None
    if isinstance(snapshot, dict):
        found = next((c for c in snapshot.get("chargers", []) if c.get("id") == charger_id), None)
    found = found or {}
    return {"ocpp_version": found.get("ocpp_version"), "circuit": found.get("circuit")}


# ------------------------------------------------------------------------------ editing


def _adding(action: Literal["added", "approved"], doc: str) -> Callable[..., None]:
    """``add`` and ``approve`` take the same options; ``approve`` also checks that the
    charger tried to connect."""

    def command(
        charger: ChargerArgument,
        *,
        password_prompt: PasswordPromptOption = False,
        password_file: PasswordFileOption = None,
        model: ModelOption = None,
        label: LabelOption = None,
        idtag_format: FormatOption = None,
        min_current: MinCurrentOption = None,
        max_current: MaxCurrentOption = None,
        fallback_current: FallbackOption = None,
        priority: PriorityOption = None,
        phases: PhasesOption = None,
        config: ConfigOption = DEFAULT_CONFIG_PATH,
        as_json: JsonOption = False,
    ) -> None:
        fields = _fields(
            charger,
            model=model,
            label=label,
            idtag_format=idtag_format,
            min_current=min_current,
            max_current=max_current,
            fallback_current=fallback_current,
            priority=priority,
            phases=phases,
            config=config,
            json_mode=as_json,
        )
        extra = _knocked(charger, config, as_json) if action == "approved" else None
        warnings: list[str] = []
        password = _password(
            password_prompt, password_file, warnings, as_json, default_prompt=False
        )
        _add(
            config,
            fields,
            password,
            warnings=warnings,
            action=action,
            json_mode=as_json,
            extra=extra,
        )

    command.__doc__ = doc
    return command


chargers_app.command("add")(
    _adding("added", "Add a charger to the configuration file (comments and layout are kept).")
)
chargers_app.command("approve")(
    _adding(
        "approved",
        "Let in a charger that tried to connect with an unknown identity (see `pending`):\n"
        "it is added to the configuration like `add` does.",
    )
)


def _knocked(charger: str, config_path: Path, json_mode: bool) -> dict[str, Any]:
    """Where from and how often an unknown ``charger`` tried to connect; fails when it did
    not, or when it is configured (then it needs a password, not an approval)."""
    pending = _read(config_path, json_mode, "chargers.pending", key="pending")["pending"]
    knocked = next((p for p in pending if p["id"] == charger), None)
    if knocked is None:
        hint = _did_you_mean(
            charger,
            [p["id"] for p in pending],
            otherwise=f"`edgegw chargers pending` lists who tried; to add a charger that has "
            f"not tried yet, use `edgegw chargers add {charger}`",
        )
        fail(f"{charger} has not tried to connect", EXIT_FAILURE, hint, json_mode=json_mode)
    if knocked["configured"]:
        fail(
            f"{charger} is configured already; it was refused because of its password "
            f"({knocked['reason']})",
            EXIT_FAILURE,
            f"set the password it uses: `edgegw chargers set-password {charger}`",
            json_mode=json_mode,
        )
    return {"address": knocked["address"], "attempts": knocked["attempts"]}


def _add(
    config_path: Path,
    fields: dict[str, Any],
    password: str | None,
    *,
    warnings: list[str],
    action: str,
    json_mode: bool,
    extra: dict[str, Any] | None = None,
) -> None:
    charger_id = fields["id"]
    document = _load_file(config_path, json_mode)
    near = _same_id(charger_id, document.charger_ids())
    if near is not None:
        fail(
            f"{near} is already configured in {config_path}"
            + ("" if near == charger_id else f" (ids differing only in case clash: {charger_id})"),
            EXIT_FAILURE,
            f"change it with `edgegw chargers set-password {near}`, or remove it first",
            json_mode=json_mode,
        )
    if password is None:
        warnings.append(
            f"no password: any device on the network can connect as {charger_id}; set one with "
            f"`edgegw chargers set-password {charger_id}` (and the same on the charger)"
        )
    else:
        fields["password_hash"] = hash_password(password)
    document.add_charger(fields)
    _report_edit(
        document,
        action,
        fields,
        password=password is not None,
        warnings=warnings,
        json_mode=json_mode,
        extra=extra,
    )


SETTINGS: dict[str, str] = {
    "label": "label",
    "model": "model",
    "idtag-format": "idtag_format",
    "min-current": "min_current_a",
    "max-current": "max_current_a",
    "fallback-current": "fallback_current_a",
    "priority": "priority",
    "phases": "phases",
}
"""``chargers set --unset`` names (the options' names, or the configuration keys)."""

UnsetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--unset",
        help="Remove a setting so its default applies (repeatable): " + ", ".join(SETTINGS) + ".",
    ),
]


@chargers_app.command("set")
def set_charger(
    charger: ChargerArgument,
    *,
    model: ModelOption = None,
    label: LabelOption = None,
    idtag_format: FormatOption = None,
    min_current: MinCurrentOption = None,
    max_current: MaxCurrentOption = None,
    fallback_current: FallbackOption = None,
    priority: PriorityOption = None,
    phases: PhasesOption = None,
    unset: UnsetOption = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Change a charger's settings in the configuration file (comments and layout are kept),
    then ask a running daemon to take the change.

    Example: `edgegw chargers set CP1 --idtag-format hex_reversed --max-current 16`."""
    fields = _fields(
        charger,
        model=model,
        label=label,
        idtag_format=idtag_format,
        min_current=min_current,
        max_current=max_current,
        fallback_current=fallback_current,
        priority=priority,
        phases=phases,
        config=config,
        json_mode=as_json,
    )
    removing: list[str] = []
    for name in unset or ():
        key = SETTINGS.get(name.removeprefix("--"), name)
        if key not in SETTINGS.values():
            fail(
                f"--unset {name}: not a charger setting",
                EXIT_USAGE,
                f"use one of: {', '.join(SETTINGS)}",
                json_mode=as_json,
            )
        if key in fields:
            fail(f"{name} is both set and unset", EXIT_USAGE, json_mode=as_json)
        removing.append(key)
    changes = {k: v for k, v in fields.items() if k != "id"}
    if not changes and not removing:
        fail(
            "nothing to change",
            EXIT_USAGE,
            "give the settings to change, e.g. --max-current 16 (see `edgegw chargers set --help`)",
            json_mode=as_json,
        )
    document = _configured(config, charger, as_json)
    before = document.charger(charger) or {}
    for key, value in changes.items():
        document.set_charger_value(charger, key, value)
    removed = [key for key in removing if document.unset_charger_value(charger, key)]
    edited = {
        "id": charger,
        **changes,
        **dict.fromkeys(removed, "(default)"),
    }
    result_extra = {
        "changed": {k: {"from": before.get(k), "to": v} for k, v in changes.items()},
        "unset": removed,
    }
    _report_edit(
        document,
        "changed",
        edited,
        password="password_hash" in before,
        warnings=[],
        json_mode=as_json,
        extra=result_extra,
    )


@chargers_app.command("remove")
def remove_charger(
    charger: ChargerArgument,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Remove a charger from the configuration file (it is refused from then on)."""
    document = _configured(config, charger, as_json)
    removed = document.remove_charger(charger)
    _report_edit(
        document,
        "removed",
        removed,
        password="password_hash" in removed,
        warnings=[],
        json_mode=as_json,
    )


@chargers_app.command("set-password")
def set_password(
    charger: ChargerArgument,
    *,
    password_prompt: PasswordPromptOption = False,
    password_file: PasswordFileOption = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Set the Basic-auth password a charger must present (asked for, hidden, by default).

    Set the same password on the charger (OCPP AuthorizationKey, or its web interface)."""
    document = _configured(config, charger, as_json)
    warnings: list[str] = []
    password = _password(password_prompt, password_file, warnings, as_json, default_prompt=True)
    assert password is not None
    document.set_charger_value(charger, "password_hash", hash_password(password))
    _report_edit(
        document,
        "password set",
        {"id": charger},
        password=True,
        warnings=warnings,
        json_mode=as_json,
    )


def _report_edit(
    document: ConfigFile,
    action: str,
    charger: dict[str, Any],
    *,
    password: bool,
    warnings: list[str],
    json_mode: bool,
    extra: dict[str, Any] | None = None,
) -> None:
    """Save the edited file, ask a running daemon to take it, and say what was done."""
    saved = _save(document, json_mode)
    result = {
        "ok": True,
        "action": action,
        "file": str(document.path),
        "charger": {k: v for k, v in charger.items() if k != "password_hash"},
        "password": password,
        "warnings": warnings,
        **(extra or {}),
        "daemon": _apply(saved, json_mode),
    }
    emit(result, json_mode, _render_edit)


# ------------------------------------------------------------------------------ helpers


def _config(path: Path, json_mode: bool) -> Config:
    """The configuration, leniently: a file whose only problems are elsewhere (a systemd
    credential that resolves only under systemd) still gives the socket and store paths."""
    document = _load_file(path, json_mode, code=EXIT_CONFIG)
    data = document.data()
    try:
        return parse_config(data, source=str(path))
    except ConfigError as exc:
        problems = exc.problems
    try:
        return Config.model_validate({k: data[k] for k in ("control", "store") if k in data})
    except ValidationError:
        fail(
            f"{path} is invalid: " + "; ".join(problems),
            EXIT_CONFIG,
            f"check it with `edgegw config check {path}`",
            json_mode=json_mode,
        )


def _load_file(path: Path, json_mode: bool, *, code: int = EXIT_CONFIG) -> ConfigFile:
    try:
        return ConfigFile.load(path)
    except ConfigFileError as exc:
        fail(str(exc), code, json_mode=json_mode)


def _save(document: ConfigFile, json_mode: bool) -> Config | None:
    try:
        return document.save()
    except EditRefused as exc:
        fail(
            f"{exc}: " + "; ".join(exc.problems),
            EXIT_USAGE,
            "give valid values (see `edgegw chargers add --help`)",
            json_mode=json_mode,
        )
    except ConfigFileError as exc:
        fail(str(exc), EXIT_FAILURE, json_mode=json_mode)


def _configured(path: Path, charger: str, json_mode: bool) -> ConfigFile:
    """The configuration file, which configures ``charger`` (else fail, naming the ones it
    does configure)."""
    document = _load_file(path, json_mode)
    if document.charger(charger) is None:
        ids = document.charger_ids()
        hint = _did_you_mean(
            charger,
            ids,
            otherwise=f"configured: {', '.join(ids) or 'none'}; `edgegw chargers list` shows them",
        )
        fail(f"{charger} is not configured in {path}", EXIT_FAILURE, hint, json_mode=json_mode)
    return document


def _same_id(charger_id: str, ids: Iterable[str]) -> str | None:
    """The id among ``ids`` that is ``charger_id`` but for letter case (or is it)."""
    return next((c for c in ids if c.casefold() == charger_id.casefold()), None)


def _did_you_mean(charger_id: str, ids: Iterable[str], *, otherwise: str) -> str:
    near = _same_id(charger_id, ids)
    return f"did you mean {near}? Identities are case-sensitive" if near else otherwise


def _fields(
    charger_id: str,
    *,
    model: str | None,
    label: str | None,
    idtag_format: str | None,
    min_current: float | None,
    max_current: float | None,
    fallback_current: float | None,
    priority: str | None,
    phases: str | None,
    config: Path,
    json_mode: bool,
) -> dict[str, Any]:
    if not CHARGER_ID_PATTERN.match(charger_id):
        fail(
            f"{charger_id!r} cannot be a charger identity: use 1-48 letters, digits and "
            ". _ - * + = | @ ~ (no ':' or '/')",
            EXIT_USAGE,
            json_mode=json_mode,
        )
    if model is not None:
        _check_model(model, config, json_mode)
    fields: dict[str, Any] = {"id": charger_id}
    for key, value in (
        ("label", label),
        ("model", model),
        ("idtag_format", idtag_format),
        ("min_current_a", min_current),
        ("max_current_a", max_current),
        ("fallback_current_a", fallback_current),
        ("priority", priority),
        ("phases", phases),
    ):
        if value is not None:
            fields[key] = value
    return fields


def _check_model(model: str, config: Path, json_mode: bool) -> None:
    """The model is one of the site's catalogue (shipped, or in its ``hardware_dir``)."""
    try:
        HardwareCatalogue.for_config_file(config).charger_model(model)
    except HardwareError as exc:
        fail(
            str(exc),
            EXIT_USAGE,
            "`edgegw chargers probe` can write one for a new charger",
            json_mode=json_mode,
        )


def _password(
    prompt: bool,
    file: Path | None,
    warnings: list[str],
    json_mode: bool,
    *,
    default_prompt: bool,
) -> str | None:
    if prompt and file is not None:
        fail("give --password-prompt or --password-file, not both", EXIT_USAGE, json_mode=json_mode)
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}", EXIT_USAGE, json_mode=json_mode)
        except UnicodeDecodeError:
            fail(f"{file} is not UTF-8 text", EXIT_USAGE, json_mode=json_mode)
        lines = text.splitlines()
        password = lines[0] if lines else ""
    elif prompt or default_prompt:
        password = typer.prompt(
            "Charger password", hide_input=True, confirmation_prompt=True, err=True
        )
    else:
        return None
    if len(password) < MIN_PASSWORD:
        fail(
            f"the password is shorter than {MIN_PASSWORD} characters; refusing it",
            EXIT_USAGE,
            f"OCPP asks for {OCPP_PASSWORD[0]} to {OCPP_PASSWORD[1]} characters",
            json_mode=json_mode,
        )
    low, high = OCPP_PASSWORD
    if not low <= len(password) <= high:
        warnings.append(
            f"the password has {len(password)} characters; OCPP 1.6 chargers expect "
            f"{low} to {high} and some refuse others"
        )
    return password


def _apply(config: Config | None, json_mode: bool) -> dict[str, str]:
    """Ask a running daemon to take the edited configuration; say what happened."""
    if config is None:
        return {
            "state": "not_checked",
            "message": "The file still has earlier problems, so the daemon was not asked to "
            f"reload: fix them (`edgegw config check`), then `{RESTART}`.",
        }
    try:
        client = control_client(config)
    except DaemonNotRunning:
        return {
            "state": "not_running",
            "message": f"edgegw is not running; it uses the change when it starts ({START_HINT}).",
        }
    except ControlClientError as exc:
        return {"state": "restart_needed", "message": f"{exc}; `{RESTART}` applies the change."}
    try:
        answer = client.call("config.reload")
    except PermissionDenied:
        return {
            "state": "restart_needed",
            "message": f"Not allowed to ask the daemon to reload; `{RESTART}` applies the change.",
        }
    except RemoteError as exc:
        if exc.code == ErrorCode.UNKNOWN_OP:
            return {
                "state": "restart_needed",
                "message": f"The running daemon cannot reload its configuration: `{RESTART}` "
                "applies the change (chargers reconnect by themselves).",
            }
        return {
            "state": "reload_failed",
            "message": f"The daemon did not take the change: {exc.message}",
        }
    except ControlClientError as exc:
        return {"state": "restart_needed", "message": f"{exc}; `{RESTART}` applies the change."}
    detail = answer.get("message") if isinstance(answer, dict) else None
    if isinstance(answer, dict) and answer.get("needs_restart"):
        return {"state": "restart_needed", "message": str(detail)}
    return {"state": "reloaded", "message": detail or "The running daemon took the change."}


# ------------------------------------------------------------------------------ text output


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    age = max(0.0, time.time() - seconds)
    if age < 90:
        return f"{age:.0f} s ago"
    if age < 5400:
        return f"{age / 60:.0f} min ago"
    if age < 2 * 86400:
        return f"{age / 3600:.0f} h ago"
    return f"{age / 86400:.0f} days ago"


def _state(charger: dict[str, Any]) -> str:
    if charger["connected"]:
        return "connected"
    if charger["state"] == "never seen":
        return "never connected"
    return "offline"


def _render_list(result: dict[str, Any]) -> str:
    chargers = result["chargers"]
    lines: list[str] = []
    if not chargers:
        lines.append("No chargers configured. Add one with `edgegw chargers add ID`.")
    else:
        rows: list[Sequence[str]] = [
            ("CHARGER", "STATE", "OCPP", "MODEL", "IDTAG FORMAT", "LAST SEEN")
        ]
        for c in chargers:
            name = c["id"] if c["configured"] else f"{c['id']} (not configured)"
            fmt = c["idtag_format"]
            if c["idtag_format_source"] != "configured":
                fmt = "auto" if fmt == "auto" else f"{fmt} (detected)"
            rows.append(
                (
                    name,
                    _state(c),
                    _version(c),
                    c.get("model") or c.get("reported_model") or "-",
                    fmt,
                    _ago(c.get("last_seen")),
                )
            )
        lines += table(rows)
    if result["pending"]:
        lines.append(
            f"{result['pending']} identit{'y' if result['pending'] == 1 else 'ies'} tried to "
            "connect and were refused: `edgegw chargers pending`"
        )
    return "\n".join(lines)


def _version(charger: dict[str, Any]) -> str:
    """``1.6``, ``2.0.1``: the version of its connection (``-``: not known here)."""
    version = charger.get("ocpp_version")
    return version.removeprefix("ocpp") if isinstance(version, str) else "-"


def _render_show(c: dict[str, Any]) -> str:
    lines = [f"Charger {c['id']}" + ("" if c["configured"] else " (not configured)")]
    lines.append(f"  state          {_state(c)}")
    v2 = str(c.get("ocpp_version") or "").startswith("ocpp2")
    if c.get("ocpp_version"):
        lines.append(
            f"  OCPP           {_version(c)}" + (" (connectors are its EVSEs)" if v2 else "")
        )
    if c.get("circuit"):
        lines.append(f"  circuit        {c['circuit']}")
    if c.get("cloud_link"):
        lines.append(f"  cloud link     {c['cloud_link']}")
    if c["configured"]:
        lines += [
            f"  label          {c['label'] or '-'}",
            f"  model          {c['model'] or 'generic (no model set)'}",
            f"  password       {'set' if c['password'] else 'none (anyone can connect as it)'}",
            f"  current        {_current_range(c)}, fallback {c['fallback_current_a']:g} A, "
            f"{c['priority']}, phases {c['phases']}",
        ]
        if c.get("free_charging"):
            lines.append("  free charging  on (set by the caretaker)")
    fmt = c["idtag_format"]
    source = c["idtag_format_source"]
    if source == "unknown":
        fmt = "auto (not detected yet: every form of a card is recognised)"
    else:
        fmt = f"{fmt} ({source})"
    lines.append(f"  idTag format   {fmt}")
    if "last_seen" in c:
        lines += [
            f"  reported       {c['vendor'] or '-'} {c['reported_model'] or ''}".rstrip()
            + (f", serial {c['serial']}" if c["serial"] else "")
            + (f", firmware {c['firmware']}" if c["firmware"] else ""),
            f"  last seen      {_ago(c['last_seen'])} from {c['address'] or '-'}",
        ]
        if c["refused"]:
            lines.append(
                f"  refused        {c['refused']['count']} time(s), last: {c['refused']['reason']}"
            )
    for connector in c["connectors"]:
        error = connector["error_code"]
        extra = f" ({error})" if error and error != "NoError" else ""
        place = "EVSE" if v2 else "connector"
        lines.append(f"  {place} {connector['connector']:<9} {connector['status']}{extra}")
    local = c["local_list"]
    if local["capabilities"] is not None or local["version"] is not None:
        caps = local["capabilities"] or {}
        if caps and not caps.get("supported", True):
            reason = caps.get("reason") or "not supported by the charger"
            lines.append(f"  local list     not pushed ({reason})")
        else:
            state = ""
            if "in_step" in local:
                state = ", in step" if local["in_step"] else ", being updated"
            lines.append(f"  local list     version {local['version']}{state}")
    return "\n".join(lines)


def _current_range(c: dict[str, Any]) -> str:
    """``6-16 A``, or with a caretaker's cap ``6-10 A (caretaker's maximum; configured 6-16
    A)``; a cap of 0 pauses the charger."""
    low, high = c["min_current_a"], c["max_current_a"]
    cap = c.get("caretaker_max_a")
    if cap is None:
        return f"{low:g}-{high:g} A"
    if cap == 0:
        return f"paused by the caretaker (0 A; configured {low:g}-{high:g} A)"
    effective = c.get("effective_max_a", min(cap, high))
    return f"{low:g}-{effective:g} A (caretaker's maximum; configured {low:g}-{high:g} A)"


def _render_wrong_urls(wrong: list[dict[str, Any]]) -> list[str]:
    """Handshakes refused for their URL: what the charger used, what it should use."""
    if not wrong:
        return []
    rows: list[Sequence[str]] = [("FROM", "PATH USED", "ATTEMPTS", "LAST TRY", "SET ITS URL TO")]
    rows += [
        (
            w["address"],
            w["path"],
            str(w.get("attempts", "?")) if not w.get("from_journal") else "-",
            _ago(w["last_seen"]),
            w["url"],
        )
        for w in wrong
    ]
    count = len(wrong)
    return [
        f"{count} connection attempt{'' if count == 1 else 's'} refused for a wrong URL (the "
        "path must be the server path and the charger's identity, nothing more):",
        *table(rows),
    ]


def _render_pending(result: dict[str, Any]) -> str:
    pending = result["pending"]
    wrong = _render_wrong_urls(result.get("wrong_urls") or [])
    if not pending:
        if wrong:
            return "\n".join([*wrong, "No unknown identity was refused."])
        return "No charger was refused. Unknown identities that try to connect show up here."
    rows: list[Sequence[str]] = [("IDENTITY", "ATTEMPTS", "LAST TRY", "FROM", "WHY", "NEXT STEP")]
    rows += [
        (
            p["id"],
            str(p["attempts"]),
            _ago(p["last_seen"]),
            p["address"] or "-",
            p["reason"] or "-",
            p["next_step"],
        )
        for p in pending
    ]
    return "\n".join([*table(rows), *(["", *wrong] if wrong else [])])


def _shown(value: Any) -> str:
    if value is None:
        return "(default)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _render_edit(result: dict[str, Any]) -> str:
    charger = result["charger"]
    action = result["action"]
    charger_id, path = charger["id"], result["file"]
    details = [f"{k} {v}" for k, v in charger.items() if k != "id"]
    if action in ("added", "approved"):
        details.append("password set" if result["password"] else "no password")
    shown = f" ({', '.join(details)})" if details else ""
    if action == "added":
        lines = [f"Added charger {charger_id} to {path}{shown}."]
    elif action == "approved":
        lines = [f"Approved {charger_id}: added to {path}{shown}."]
    elif action == "removed":
        lines = [f"Removed charger {charger_id} from {path}; it is refused from then on."]
    elif action == "changed":
        changes = [
            f"{key} {_shown(change['from'])} -> {_shown(change['to'])}"
            for key, change in result["changed"].items()
        ]
        changes += [f"{key} back to its default" for key in result["unset"]]
        lines = [f"Changed charger {charger_id} in {path}: {', '.join(changes) or 'nothing'}."]
    else:
        lines = [
            f"New password for {charger_id} saved in {path}. Set the same on the charger "
            "(its AuthorizationKey or web interface)."
        ]
    lines += [f"Warning: {w}" for w in result["warnings"]]
    lines.append(result["daemon"]["message"])
    return "\n".join(lines)
