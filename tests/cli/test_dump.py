"""``edgegw dump``: one file with what support needs, and no secret in it (a real gateway on
port 0, a simulated charger, then the same site with the daemon stopped)."""

from __future__ import annotations

import asyncio
import json
import stat
import tarfile
from pathlib import Path

from typer.testing import CliRunner, Result

from edgegw.auth.passwords import hash_password
from edgegw.cli.dump import redact_config
from edgegw.cli.main import app
from edgegw.sim.charger import SimCharger
from tests.conftest import GatewayFactory, gateway_url

runner = CliRunner()
CLOUD_SECRET = "cloud-secret-never-in-a-dump"
MQTT_SECRET = "mqtt-secret-never-in-a-dump"


def members(path: Path) -> dict[str, str]:
    with tarfile.open(path) as tar:
        out = {}
        for info in tar.getmembers():
            handle = tar.extractfile(info)
            assert handle is not None
            out[info.name.split("/", 1)[1]] = handle.read().decode()
        return out


async def acli(*args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, app, list(args))


def test_redaction_keeps_comments_and_file_references() -> None:
    text = (
        '# site\n[[chargers]]\nid = "CP1"  # bay 1\n'
        f'cloud_password = "{CLOUD_SECRET}"\npassword_hash = "$scrypt$abc"\n'
        '[[chargers]]\nid = "CP2"\ncloud_password = { file = "/etc/edgegw/secrets/CP2" }\n'
        f'[mqtt]\nhost = "broker"\npassword = "{MQTT_SECRET}"\n'
    )
    redacted = redact_config(text)
    assert CLOUD_SECRET not in redacted and MQTT_SECRET not in redacted
    assert "$scrypt$abc" not in redacted
    assert "# bay 1" in redacted and '"/etc/edgegw/secrets/CP2"' in redacted
    assert redacted.count('"***"') == 3
    broken = redact_config(f'[server\npassword = "{MQTT_SECRET}"\n')
    assert MQTT_SECRET not in broken


async def test_dump_of_a_running_site(tmp_path: Path, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(chargers=[{"id": "CP1"}])
    cfg = gateway.config
    config = tmp_path / "site.toml"
    config.write_text(
        "# the garage\n"
        f'[store]\npath = "{cfg.store.path}"\n'
        f'[control]\nsocket = "{cfg.control.socket}"\ngroup = ""\n'
        '[[chargers]]\nid = "CP1"\n'
        f'password_hash = "{hash_password("a-long-charger-password")}"\n'
    )
    config.chmod(0o600)
    async with SimCharger("CP1", gateway_url(gateway)) as cp1:
        await cp1.boot()
        out = tmp_path / "running.tar.gz"
        result = await acli(
            "dump", "-o", str(out), "--skip-cloud", "--skip-meters", "--json", "-c", str(config)
        )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    parts = members(out)
    assert {
        "config.toml",
        "versions.json",
        "doctor.txt",
        "doctor.json",
        "site.json",
        "events.json",
        "messages.jsonl",
        "manifest.json",
    } <= set(parts)
    assert "$scrypt$" not in "".join(parts.values())
    assert "# the garage" in parts["config.toml"]
    assert json.loads(parts["versions.json"])["edgegw"]
    site = json.loads(parts["site.json"])
    assert site["source"] == "daemon" and "energy.state" in site
    assert [c["id"] for c in site["chargers.list"]["chargers"]] == ["CP1"]
    frames = [json.loads(line) for line in parts["messages.jsonl"].splitlines()]
    assert any("BootNotification" in f["frame"] for f in frames)
    assert "charger CP1" in parts["doctor.txt"]
    manifest = json.loads(parts["manifest.json"])
    assert set(manifest["parts"]) >= {"config.toml", "site.json"}
    assert json.loads(result.stdout)["file"] == str(out)


def test_dump_of_a_stopped_site_with_a_broken_part(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "gw.db"}"\n'
        f'[control]\nsocket = "{tmp_path / "gw.sock"}"\ngroup = ""\n'
        '[[chargers]]\nid = "CP1"\n'
    )
    out = tmp_path / "stopped.tar.gz"
    result = runner.invoke(
        app, ["dump", "-o", str(out), "--skip-cloud", "--skip-meters", "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in result.stdout
    parts = members(out)
    assert json.loads(parts["site.json"])["source"] == "store"
    assert json.loads(parts["events.json"]) == []

    broken = tmp_path / "broken.toml"
    broken.write_text("[server]\nport = -1\n")
    out = tmp_path / "broken.tar.gz"
    result = runner.invoke(app, ["dump", "-o", str(out), "--skip-cloud", "-c", str(broken)])
    assert result.exit_code == 0, result.output
    parts = members(out)
    assert "site.json" not in parts and "doctor.txt" in parts
    assert "server.port" in json.loads(parts["manifest.json"])["not_collected"]["site.json"]


def test_redaction_masks_credentials_written_into_a_url() -> None:
    text = '[cloud]\nurl = "wss://CP-1:s3cret-in-url@csms.example.com/ocpp"\n'
    redacted = redact_config(text)
    assert "s3cret-in-url" not in redacted and "CP-1" not in redacted
    assert "wss://***@csms.example.com/ocpp" in redacted
