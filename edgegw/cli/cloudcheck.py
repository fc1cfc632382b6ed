"""``edgegw cloud check``: can this gateway reach the cloud CSMS as each of its chargers?

The steps and their diagnosis live in :mod:`edgegw.proxy.cloudcheck`; this module picks the
cloud settings and identities from the configuration (or the command line), prints each step
as it finishes and exits 1 if any failed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from edgegw.cli.completion import complete_charger
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    emit,
    fail,
    note,
)
from edgegw.config import CloudConfig, Config, ConfigError, load_config
from edgegw.proxy.cloudcheck import (
    VERSIONS,
    BootFacts,
    CheckStep,
    CloudCheck,
    Identity,
    StepStatus,
    check_cloud,
)
from edgegw.store.store import Store

cloud_app = typer.Typer(help="Check the link to the operator's cloud CSMS.", no_args_is_help=True)

_MARKS = {
    StepStatus.PASS: "PASS",
    StepStatus.WARN: "WARN",
    StepStatus.FAIL: "FAIL",
    StepStatus.SKIP: "skip",
}


def _format_step(step: CheckStep) -> str:
    took = "" if step.seconds is None else f" ({step.seconds * 1000:.0f} ms)"
    lines = [f"  {_MARKS[step.status]}  {step.title}{took}", f"        {step.detail}"]
    if step.hint:
        lines.append(f"        → {step.hint}")
    return "\n".join(lines)


def _summary(report: CloudCheck) -> str:
    failed = [s for s in report.steps if s.failed]
    warned = [s for s in report.steps if s.status is StepStatus.WARN]
    if failed:
        first = failed[0]
        return (
            f"Result: {len(failed)} step(s) failed, first: {first.title}. "
            "Fix that one first, then run `edgegw cloud check` again."
        )
    if warned:
        return f"Result: the cloud is reachable, with {len(warned)} warning(s) above."
    return "Result: the cloud is reachable and accepts every charger checked."


def _cloud_and_identities(
    config_path: Path, url: str | None, chargers: list[str], json_mode: bool
) -> tuple[CloudConfig, list[Identity]]:
    config: Config | None = None
    if url is None or config_path.exists():
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            fail(
                str(exc),
                EXIT_CONFIG,
                f"fix it (`edgegw config check {config_path}`), or give --url to check a "
                "cloud without a configuration",
                json_mode=json_mode,
            )
    if url is not None:
        base = config.cloud if config is not None and config.cloud is not None else None
        try:
            cloud = (
                CloudConfig.model_validate({**base.model_dump(), "url": url})
                if base is not None
                else CloudConfig(url=url)
            )
        except ValueError as exc:
            fail(
                f"--url {url!r} is not usable: {exc}",
                EXIT_USAGE,
                "give a ws:// or wss:// URL, e.g. wss://csms.example.com/ocpp",
                json_mode=json_mode,
            )
    elif config is not None and config.cloud is not None:
        cloud = config.cloud
    else:
        fail(
            f"{config_path} has no [cloud] section: this site runs standalone",
            EXIT_CONFIG,
            'add [cloud] url = "wss://..." to the configuration, or give --url',
            json_mode=json_mode,
        )
    identities: list[Identity] = []
    known = {c.id: c for c in config.chargers} if config is not None else {}
    for charger_id in chargers or list(known):
        configured = known.get(charger_id)
        if configured is None:
            if not json_mode:
                note(
                    f"note: {charger_id} is not in the configuration; "
                    "checking it without a password"
                )
            identities.append(Identity(charger_id))
        else:
            identities.append(Identity.from_config(configured))
    if not identities and not json_mode:
        note("note: no charger to try the OCPP handshake with; give --charger ID to check one")
    return cloud, identities


def _boots(config_path: Path, json_mode: bool) -> dict[str, BootFacts]:
    """What each charger last said of itself in a BootNotification (the gateway's store)."""
    if not config_path.exists():
        return {}
    try:
        store_path = load_config(config_path).store.path
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG, "--boot reads the gateway's store", json_mode=json_mode)
    if not store_path.exists():
        return {}

    async def read() -> dict[str, BootFacts]:
        store = await Store.open(store_path)
        try:
            rows = await store.chargers()
        finally:
            await store.close()
        return {
            r.id: BootFacts(r.vendor, r.model, r.serial, r.firmware)
            for r in rows
            if r.vendor and r.model
        }

    return asyncio.run(read())


@cloud_app.command("check")
def cloud_check(
    *,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    charger: Annotated[
        list[str] | None,
        typer.Option(
            "--charger",
            "-C",
            help="Charger identity to connect as (repeatable; default: every configured one).",
            autocompletion=complete_charger,
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Check this ws:// or wss:// URL instead of [cloud] url.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds allowed per step (default: [cloud] connect_timeout).", min=0.1),
    ] = None,
    ocpp: Annotated[
        str,
        typer.Option(
            "--ocpp", help="The OCPP version to connect with: 1.6 or 2.0.1 (as the charger)."
        ),
    ] = "1.6",
    boot: Annotated[
        bool,
        typer.Option(
            "--boot",
            help="Also send one BootNotification (in that version's form) with what the charger "
            "last said of itself, and say whether the CSMS registers it.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check DNS, TCP, the TLS certificate and the OCPP handshake to the cloud, step by step.

    The handshake connects as each charger (Basic auth with its cloud password), in OCPP 1.6
    or, with --ocpp 2.0.1, in 2.0.1, and closes at once without sending any OCPP message. With
    --boot it first sends one BootNotification carrying the vendor, model, serial number and
    firmware the charger itself last sent (from the gateway's store; a charger never seen is
    checked without it). A CSMS that allows one connection per charger may drop that charger's
    live link meanwhile; the gateway reconnects it by itself.
    """
    version = VERSIONS.get(ocpp.strip().removeprefix("ocpp"))
    if version is None:
        fail(f"--ocpp {ocpp!r}: give 1.6 or 2.0.1", EXIT_USAGE, json_mode=as_json)
    cloud, identities = _cloud_and_identities(config, url, charger or [], as_json)
    boots = _boots(config, as_json) if boot else None
    if not as_json:
        typer.echo(f"Checking the cloud at {cloud.url}")

    def progress(step: CheckStep) -> None:
        if not as_json:
            typer.echo(_format_step(step))

    report = asyncio.run(
        check_cloud(
            cloud, identities, timeout=timeout, on_step=progress, version=version, boots=boots
        )
    )

    def render(_: Any) -> str:
        return _summary(report)

    emit(report.as_dict(), as_json, render)
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)
