"""Shell completion for the ``edgegw`` command: charger ids, meter names and meter profiles.

The shell runs ``edgegw`` on every Tab press, so these callbacks read only what they need —
the configuration file as plain TOML, not validated and without its secrets (which need root),
or the names of the profile files — and answer nothing rather than an error: no configuration,
no suggestions. The configuration is the one the command line names (``--config``), else
``$EDGEGW_CONFIG``, else the default.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from pathlib import Path
from typing import Any

import typer

from edgegw.config import DEFAULT_CONFIG_PATH

__all__ = [
    "complete_charger",
    "complete_meter",
    "complete_meter_profile",
    "config_path",
]

_NEW_IDS = frozenset({"add", "approve"})
"""``edgegw chargers`` commands that take an id not configured yet: suggesting the configured
ones would mislead."""


def config_path(ctx: typer.Context | None) -> Path:
    """The configuration the command being completed would read."""
    node: Any = ctx  # its parents are click contexts
    while node is not None:
        value = node.params.get("config")
        if isinstance(value, str | Path) and str(value):
            return Path(value)
        node = node.parent
    return Path(os.environ.get("EDGEGW_CONFIG") or DEFAULT_CONFIG_PATH)


def _raw_config(ctx: typer.Context | None) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        return tomllib.loads(config_path(ctx).read_text(encoding="utf-8"))
    return {}


def _tables(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = raw.get(key)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def complete_charger(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """The configured charger ids starting with ``incomplete``, with their labels as help."""
    if ctx.info_name in _NEW_IDS and ctx.parent is not None and ctx.parent.info_name == "chargers":
        return []
    found = []
    for charger in _tables(_raw_config(ctx), "chargers"):
        charger_id = charger.get("id")
        if isinstance(charger_id, str) and charger_id.startswith(incomplete):
            label = charger.get("label")
            found.append((charger_id, label if isinstance(label, str) else ""))
    return found


def complete_meter(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """The configured meters' names (``[[meters]] name``, default ``site``), with profiles."""
    found = []
    for meter in _tables(_raw_config(ctx), "meters"):
        name = meter.get("name", "site")
        profile = meter.get("profile")
        if isinstance(name, str) and name.startswith(incomplete):
            found.append((name, profile if isinstance(profile, str) else ""))
    return found


def complete_meter_profile(ctx: typer.Context, incomplete: str) -> list[str]:
    """Meter profile ids: the file names in ``--profiles-dir``, else the site's catalogue."""
    from edgegw.hardware_catalogue import (  # noqa: PLC0415 - only when completing
        HardwareCatalogue,
        HardwareError,
    )

    directory = ctx.params.get("profiles_dir")
    if isinstance(directory, str | Path):
        catalogue = HardwareCatalogue.of_folder("meters", Path(directory))
    else:
        catalogue = HardwareCatalogue.for_config_file(config_path(ctx))
    with contextlib.suppress(HardwareError):
        return [name for name in catalogue.files("meters") if name.startswith(incomplete)]
    return []
