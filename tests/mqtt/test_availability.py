"""Honest availability: a gateway killed without warning is 'offline' (the broker's last will)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from tests.mqtt.conftest import PREFIX, Mosquitto, Recorder

AVAILABILITY = f"{PREFIX}/availability"
ROOT = Path(__file__).resolve().parents[2]


def _toml(sections: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, int | float):
                text = repr(value)
            else:
                text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


async def test_a_killed_gateway_is_offline(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = tmp_path / "edgegw.toml"
    config.write_text(
        _toml(
            {
                "server": {"host": "127.0.0.1", "port": 0},
                "store": {"path": str(tmp_path / "gw.db")},
                "control": {"socket": str(tmp_path / "gw.sock"), "group": ""},
                "mqtt": mosquitto.section(),
            }
        )
    )
    async with Recorder(mosquitto, AVAILABILITY) as recorder:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.mqtt.gateway_proc",
            str(config),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(30):
                assert (await proc.stdout.readline()).strip() == b"ready"
            await recorder.wait_for(AVAILABILITY, lambda m: m.payload == "online")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            await recorder.wait_for(AVAILABILITY, lambda m: m.payload == "offline", timeout=10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    async with Recorder(mosquitto, AVAILABILITY) as late:
        will = await late.wait_for(AVAILABILITY)
        assert will.payload == "offline" and will.retain
