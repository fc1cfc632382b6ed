"""A running gateway takes a changed board limit and a new board on reload, without restart,
and refuses (applying nothing) a reload that changes a board's meter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgegw.config import load_config
from edgegw.daemon import Gateway


def config_text(tmp_path: Path, boards: str) -> str:
    return f"""
[server]
host = "127.0.0.1"
port = 0
[store]
path = "{tmp_path / "gw.db"}"
[control]
socket = "{tmp_path / "gw.sock"}"
group = ""
[site]
limit_a = 250
margin_a = 5
[buses.main]
transport = "tcp"
host = "127.0.0.1"
port = 1
[[meters]]
name = "grid"
profile = "eastron-sdm630"
[[meters]]
name = "board-1"
profile = "eastron-sdm630"
unit_id = 2
role = "circuit"
{boards}
[[chargers]]
id = "CP1"
circuit = "level-1"
"""


LEVEL_1 = '[[circuits]]\nname = "level-1"\nlimit_a = 100\nmeter = "board-1"\n'


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    path = tmp_path / "edgegw.toml"
    path.write_text(config_text(tmp_path, LEVEL_1))
    gw = Gateway(load_config(path), config_path=path)
    task = asyncio.create_task(gw.run(install_signal_handlers=False))  # noqa: TID251
    await asyncio.wait_for(gw.started.wait(), 10)
    yield gw
    gw.shutdown()
    await asyncio.wait_for(task, 15)


async def test_a_board_limit_and_a_new_board_apply_on_reload(
    gateway: Gateway, tmp_path: Path
) -> None:
    controller = gateway.controller
    assert controller is not None
    assert [(c.name, c.limit_a) for c in controller.state().circuits] == [
        ("level-1", (100.0, 100.0, 100.0))
    ]
    boards = LEVEL_1.replace("limit_a = 100", "limit_a = 80")
    boards += '[[circuits]]\nname = "level-2"\nlimit_a = 63\n'
    (tmp_path / "edgegw.toml").write_text(config_text(tmp_path, boards))
    plan = await gateway.reload()
    assert plan.applicable, plan.message()
    assert plan.circuits == ["circuit level-1: limit_a changed", "circuit level-2 added"]
    assert [(c.name, c.limit_a) for c in controller.state().circuits] == [
        ("level-1", (80.0, 80.0, 80.0)),
        ("level-2", (63.0, 63.0, 63.0)),
    ]


async def test_a_boards_meter_change_is_not_applied(gateway: Gateway, tmp_path: Path) -> None:
    boards = LEVEL_1.replace("limit_a = 100", "limit_a = 80") + 'meter_role = "non_ev"\n'
    (tmp_path / "edgegw.toml").write_text(config_text(tmp_path, boards))
    plan = await gateway.reload()
    assert not plan.applicable
    assert any("circuit level-1: its meter changed" in r for r in plan.needs_restart)
    assert gateway.config.circuits[0].limit_a == 100  # nothing applied, not even the limit
    assert gateway.controller is not None
    assert gateway.controller.state().circuits[0].limit_a == (100.0, 100.0, 100.0)
