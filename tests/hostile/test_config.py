"""Hostile numbers in the configuration: every float key, found by walking the model.

NaN, infinities and absurd magnitudes must be refused by ``edgegw config check`` with the key
path and the allowed range, not accepted and left to kill load capping at run time.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from edgegw.cli.main import app
from edgegw.config import Config, ConfigError, parse_config

# Every section present, each as small as it may be, so every float key can be reached.
BASE: dict[str, Any] = {
    "server": {"port": 0},
    "cloud": {"url": "wss://csms.example.com/ocpp"},
    "site": {"limit_a": 63},
    "buses": {"main": {"transport": "tcp", "host": "10.0.0.5"}},
    "meters": [{"profile": "eastron-sdm630"}],
    "chargers": [{"id": "CP1"}],
    "mqtt": {"host": "broker.local"},
    "tariffs": [{"name": "t", "bands": [{"start": "22:00", "end": "06:00"}]}],
    "circuits": [{"name": "board", "limit_a": 32}],
    "limits": [{"name": "relay", "source": "gpio", "path": "/x", "limit_a": 20}],
    "peak": {"target_kw": 50},
}
PATH_IN_BASE: dict[str, tuple[str | int, ...]] = {
    "buses": ("buses", "main"),
    "meters": ("meters", 0),
    "chargers": ("chargers", 0),
    "tariffs": ("tariffs", 0),
    "circuits": ("circuits", 0),
    "limits": ("limits", 0),
}


def _has_float(annotation: Any) -> bool:
    if annotation is float:
        return True
    return any(_has_float(arg) for arg in typing.get_args(annotation))


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    elif isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            yield from _models(arg)


def float_keys() -> list[tuple[str | int, ...]]:
    """Key paths (as in BASE) of every float in the model, sub-sections included."""
    found: list[tuple[str | int, ...]] = []

    def walk(model: type[BaseModel], at: tuple[str | int, ...]) -> None:
        for name, field in model.model_fields.items():
            path = (*at, name)
            if _has_float(field.annotation):
                found.append(path)
            nested = (*path, 0) if typing.get_origin(field.annotation) is list else path
            for sub in _models(field.annotation):
                walk(sub, PATH_IN_BASE.get(name, (name,)) if not at else nested)

    walk(Config, ())
    return found


FLOAT_KEYS = float_keys()


def with_value(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(BASE))
    node: Any = data
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[path[-1]] = value
    return data


def dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def test_the_walk_finds_the_keys_of_the_issue() -> None:
    names = {dotted(p) for p in FLOAT_KEYS}
    expected = {
        "site.limit_a",
        "site.fallback_ev_a",
        "cloud.call_timeout",
        "server.ping_interval",
        "cloud.ping_interval",
        "auth.cache_days",
        "sync.retry_interval",
        "mqtt.reconnect_max_delay",
        "buses.main.timeout",
        "meters[0].poll_interval",
        "chargers[0].max_current_a",
        "circuits[0].limit_a",
        "limits[0].limit_a",
        "limits[0].voltage_v",
        "peak.target_kw",
    }
    assert expected <= names, expected - names
    parse_config(BASE)  # the base is valid: each case below breaks one key only


@pytest.mark.parametrize("path", FLOAT_KEYS, ids=dotted)
@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, 1e308, -1e308, "nan", "inf"],
    ids=["nan", "inf", "-inf", "1e308", "-1e308", "str-nan", "str-inf"],
)
def test_a_float_key_refuses_nan_infinity_and_absurd_magnitudes(
    path: tuple[str | int, ...], value: Any
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_value(path, value))
    key = dotted(path)
    mine = [p for p in caught.value.problems if p.startswith(f"{key}:")]
    assert mine, caught.value.problems
    assert "finite number" in mine[0] and "<=" in mine[0], mine[0]  # the allowed range


@pytest.mark.parametrize("value", [[math.nan, 63, 63], [63, math.inf, 63], [63, 63, 1e308]])
@pytest.mark.parametrize("key", ["limit_a", "fallback_ev_a"])
def test_per_phase_values_are_checked_one_by_one(key: str, value: list[float]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_value(("site", key), value))
    assert any(p.startswith(f"site.{key}:") for p in caught.value.problems), caught.value.problems


def test_a_site_limit_beyond_any_connection_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_value(("site", "limit_a"), 100_000))
    assert any("limit_a" in p for p in caught.value.problems), caught.value.problems


def test_ordinary_values_still_pass() -> None:
    config = parse_config(
        with_value(("cloud", "call_timeout"), 120) | {"auth": {"cache_days": 365.5}}
    )
    assert config.cloud is not None and config.cloud.call_timeout == 120
    assert config.auth.cache_days == 365.5


def test_config_check_names_the_key_and_range(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    path.write_text(
        "[site]\nlimit_a = nan\nfallback_ev_a = inf\n[cloud]\n"
        'url = "wss://csms.example.com/ocpp"\ncall_timeout = 1e308\n'
        "[auth]\ncache_days = inf\n[sync]\nretry_interval = -inf\n"
    )
    result = CliRunner().invoke(app, ["config", "check", str(path), "--json"])
    assert result.exit_code == 3
    problems = json.loads(result.stdout)["problems"]
    for key in (
        "site.limit_a",
        "site.fallback_ev_a",
        "cloud.call_timeout",
        "auth.cache_days",
        "sync.retry_interval",
    ):
        assert any(p.startswith(f"{key}: must be a finite number") for p in problems), (
            key,
            problems,
        )
