"""`edgegw doctor` against a real gateway, a stopped one, a broken configuration, a meter."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner, Result
from websockets.exceptions import InvalidStatus

from edgegw import __version__
from edgegw.cli import doctor as doctor_module
from edgegw.cli.doctor import BACKLOG_WARN_S, Doctor, check_certificate, check_clock
from edgegw.cli.main import app
from edgegw.config import parse_config
from edgegw.daemon import Gateway
from edgegw.proxy.cloudcheck import StepStatus
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import SimCloud
from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url, raw_charger

runner = CliRunner()
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}
START = {
    "connectorId": 1,
    "idTag": "04A1B2C3",
    "meterStart": 0,
    "timestamp": "2026-01-01T10:00:00Z",
}


def write_config(tmp_path: Path, gateway: Gateway, extra: str = "") -> Path:
    """A configuration naming the gateway's socket and store, as an installer's file would."""
    cfg = gateway.config
    cloud = f'[cloud]\nurl = "{cfg.cloud.url}"\n' if cfg.cloud else ""
    chargers = "".join(f'[[chargers]]\nid = "{c.id}"\n' for c in cfg.chargers)
    path = tmp_path / "site.toml"
    path.write_text(
        f'[store]\npath = "{cfg.store.path}"\n'
        f'[control]\nsocket = "{cfg.control.socket}"\ngroup = ""\n{cloud}{extra}{chargers}'
    )
    return path


async def doctor(config: Path, *args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, app, ["doctor", "-c", str(config), *args])


def by_name(result: Result) -> dict[str, dict[str, Any]]:
    report = json.loads(result.stdout)
    return {c["name"]: c for c in report["checks"]}


async def test_running_gateway_one_charger_connected_one_never_seen(
    make_gateway: GatewayFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = SimCloud()
    await cloud.start()
    gateway = await make_gateway(cloud_url=cloud.url)  # CP1 and CP2
    config = write_config(tmp_path, gateway)
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
        await cloud.wait_connected("CP1")
        await cp.boot()
        with pytest.raises(InvalidStatus):  # an identity the site does not know knocks
            async with raw_charger(gateway_url(gateway), "STRANGER"):
                pass

        result = await doctor(config, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["ok"] is True and report["exit_code"] == 0
        checks = by_name(result)
        assert checks["config"]["status"] == "pass"
        assert checks["daemon"]["status"] == "pass"
        assert "running edgegw" in checks["daemon"]["detail"]
        assert checks["database"]["status"] == "pass"
        assert "schema version" in checks["database"]["detail"]
        assert checks["charger:CP1"]["status"] == "pass"
        assert "connected" in checks["charger:CP1"]["detail"]
        assert checks["charger:CP2"]["status"] == "warn"
        assert "never connected" in checks["charger:CP2"]["detail"]
        assert checks["charger:CP2"]["command"] == f"edgegw chargers show CP2 -c {config}"
        assert checks["pending"]["status"] == "warn" and "STRANGER" in checks["pending"]["detail"]
        assert checks["sync"]["status"] == "pass"
        assert checks["cloud"]["status"] == "pass"
        assert "live cloud link of CP1 is online" in checks["cloud"]["detail"]
        assert {checks[k]["status"] for k in ("meters", "load", "tls")} == {"skip"}

        text = await doctor(config, "--skip-cloud")
        assert text.exit_code == 0, text.output
        lines = text.stdout.splitlines()
        assert any(line.startswith("PASS  charger CP1") for line in lines)
        assert any(line.startswith("WARN  charger CP2") for line in lines)
        assert any(line.startswith("SKIP  cloud") and "--skip-cloud" in line for line in lines)
        assert lines[-1].startswith("Summary:") and "0 FAIL" in lines[-1]

        monkeypatch.setattr(doctor_module, "__version__", "9.9.9")  # the CLI was upgraded
        upgraded = by_name(await doctor(config, "--json", "--skip-cloud"))
        assert upgraded["daemon"]["status"] == "warn"
        assert "this command is 9.9.9: restart it" in upgraded["daemon"]["detail"]
    await cloud.stop()


async def test_stopped_daemon_is_a_failure_and_the_files_are_still_checked(
    tmp_path: Path,
) -> None:
    cloud = SimCloud()
    await cloud.start()
    down_url = cloud.url
    await cloud.stop()  # the cloud is away: the transaction waits in the outbox
    gateway = Gateway(
        parse_config(
            {
                "server": {"host": "127.0.0.1", "port": 0},
                "store": {"path": str(tmp_path / "gw.db")},
                "control": {"socket": str(tmp_path / "gw.sock"), "group": None},
                "cloud": {"url": down_url, "reconnect_min_delay": 0.05},
                "chargers": [{"id": "CP1"}, {"id": "CP2"}],
                "auth": {"unknown_cards": "accept", "push_local_list": False},
            }
        )
    )
    await gateway.start()
    try:
        async with raw_charger(gateway_url(gateway), "CP1") as cp:
            await cp.call("BootNotification", BOOT)
            assert (await cp.call("StartTransaction", START))[0] == 3
    finally:
        await gateway.stop()
    config = write_config(tmp_path, gateway)

    result = await doctor(config, "--json", "--skip-cloud")
    assert result.exit_code == 1, result.output
    checks = by_name(result)
    assert checks["daemon"]["status"] == "fail" and "not running" in checks["daemon"]["detail"]
    assert checks["database"]["status"] == "pass"
    assert checks["charger:CP1"]["status"] == "pass"
    assert "edgegw is not running" in checks["charger:CP1"]["detail"]
    assert checks["charger:CP2"]["status"] == "warn"
    assert checks["sync"]["status"] == "pass" and "1 queued" in checks["sync"]["detail"]
    assert checks["cloud"]["status"] == "skip"
    assert "Traceback" not in result.output

    # An hour later: the backlog has waited too long; the charger was seen long ago.
    with sqlite3.connect(gateway.config.store.path) as db:
        db.execute("UPDATE outbox SET queued_at = queued_at - ?", (4 * BACKLOG_WARN_S,))
        db.execute("UPDATE chargers SET last_seen = last_seen - ?", (4 * BACKLOG_WARN_S,))
    db.close()
    later = await asyncio.to_thread(Doctor(config, skip_cloud=True).run)
    verdicts = {c.name: c for c in later.checks}
    assert verdicts["sync"].status is StepStatus.WARN
    assert "waits since" in verdicts["sync"].detail
    assert verdicts["charger:CP1"].status is StepStatus.WARN
    assert later.exit_code == 1


async def test_broken_configuration_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[server]\nport = -1\n[[chargers]]\nid = "a/b"\n')
    result = await doctor(path, "--json")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["exit_code"] == 3 and report["ok"] is False
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["config"]["status"] == "fail" and "2 problem(s)" in checks["config"]["detail"]
    assert checks["clock"]["status"] == "pass"
    # What a field error used to hide (a section's own rule) is said in the same run.
    path.write_text('[server]\nport = -1\ntls_port = 9443\n[[chargers]]\nid = "a/b"\n')
    hidden = json.loads((await doctor(path, "--json")).stdout)
    detail = {c["name"]: c for c in hidden["checks"]}["config"]["detail"]
    assert "3 problem(s)" in detail and "tls_port needs tls_cert_file" in detail
    assert checks["daemon"]["status"] == "skip"

    missing = await doctor(tmp_path / "none.toml")
    assert missing.exit_code == 3
    assert missing.stdout.splitlines()[1].startswith("FAIL  configuration")
    assert "configuration is invalid" in missing.stdout


async def test_a_failing_check_is_a_fail_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "site.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "gw.db"}"\n[control]\nsocket = "{tmp_path}/s"\n')

    def broken() -> int:
        raise RuntimeError("the build year is unknowable")

    monkeypatch.setattr(doctor_module, "build_year", broken)
    result = await doctor(path)
    assert result.exit_code == 1
    assert "FAIL  system clock           could not check: the build year is unknowable" in (
        result.stdout
    )
    assert "Traceback" not in result.output
    assert "SKIP  cloud" in result.stdout  # standalone
    assert "WARN  database" in result.stdout  # not created yet: the daemon never ran


async def test_meters_probed_when_the_daemon_is_stopped(tmp_path: Path) -> None:
    meter = SimMeter("eastron-sdm630")
    meter.set_currents(10.0, 11.0, 12.0)
    await meter.start()
    path = tmp_path / "site.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "gw.db"}"\n[control]\nsocket = "{tmp_path}/s"\n'
        "[site]\nlimit_a = 32\n"
        f'[buses.main]\ntransport = "tcp"\nhost = "127.0.0.1"\nport = {meter.port}\n'
        "timeout = 0.2\n"
        '[[meters]]\nprofile = "eastron-sdm630"\n'
        '[[chargers]]\nid = "CP1"\nfallback_current_a = 6\n'
    )
    try:
        checks = by_name(await doctor(path, "--json"))
        assert checks["meter:site"]["status"] == "pass", checks["meter:site"]
        assert "10 / 11 / 12 A" in checks["meter:site"]["detail"]
        assert checks["load"]["status"] == "pass"
        assert "chargers share 6 / 6 / 6 A of 32 / 32 / 32 A" in checks["load"]["detail"]

        meter.silent = True  # wired wrong, or unpowered
        silent = by_name(await doctor(path, "--json"))["meter:site"]
        assert silent["status"] == "fail" and "no answer" in silent["detail"]
        assert silent["command"] == f"edgegw meter probe --meter site -c {path}"

        skipped = by_name(await doctor(path, "--json", "--skip-meters"))
        assert skipped["meters"]["status"] == "skip"
    finally:
        await meter.stop()


def _certificate(tmp_path: Path, days: float) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway.local")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / f"cert-{days}.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path


@pytest.mark.parametrize(
    ("days", "status", "words"),
    [
        (365, StepStatus.PASS, "valid until"),
        (10, StepStatus.WARN, "renew it soon"),
        (-1, StepStatus.FAIL, "expired on"),
    ],
)
def test_certificate_expiry(tmp_path: Path, days: float, status: StepStatus, words: str) -> None:
    check = check_certificate("server", _certificate(tmp_path, days), time.time())
    assert check.status is status and words in check.detail


def test_certificate_unreadable(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert check_certificate("server", tmp_path / "junk.pem", 0).status is StepStatus.FAIL
    assert check_certificate("server", tmp_path / "none.pem", 0).status is StepStatus.FAIL


def test_clock_before_the_build_year_warns() -> None:
    assert check_clock(0.0, 2026).status is StepStatus.WARN  # 1970: no RTC, no NTP yet
    assert "before this edgegw was built" in check_clock(0.0, 2026).detail
    assert check_clock(time.time(), 2026).status is StepStatus.PASS


class FakeDaemon:
    """Canned answers of a running daemon's control ops (the verdicts, not the transport)."""

    def __init__(self, energy: dict[str, Any]) -> None:
        self.answers: dict[str, Any] = {
            "status": {"version": __version__, "uptime_s": 60.0, "chargers": []},
            "chargers.list": {"chargers": [], "pending": 0},
            "chargers.pending": [],
            "sync.status": {"queued": 0, "parked": 0, "chargers": []},
            "energy.state": energy,
        }

    def call(self, op: str, /, **args: Any) -> Any:
        return self.answers[op]


def _energy(mode: str, flags: tuple[str, ...] = (), health: str = "ok") -> dict[str, Any]:
    return {
        "mode": mode,
        "meter": "ok" if mode != "fallback" else "lost",
        "budget_a": [20.0, 20.0, 20.0],
        "chargers": [{"id": "CP1", "connected": True, "flags": list(flags)}],
        "meters": [
            {
                "name": "site",
                "health": health,
                "error_kind": "timeout" if health == "error" else None,
                "last_error": "no answer" if health == "error" else None,
                "consecutive_failures": 7 if health == "error" else 0,
            }
        ],
    }


@pytest.mark.parametrize(
    ("energy", "load", "meter", "words"),
    [
        (_energy("normal"), StepStatus.PASS, StepStatus.PASS, "mode normal"),
        (_energy("fallback", health="error"), StepStatus.FAIL, StepStatus.FAIL, "meter is lost"),
        (_energy("overload"), StepStatus.FAIL, StepStatus.PASS, "above its limit"),
        (_energy("normal", ("ignores_limit",)), StepStatus.FAIL, StepStatus.PASS, "CP1 ignores"),
        (_energy("normal", ("profile_rejected",)), StepStatus.WARN, StepStatus.PASS, "rejected"),
        (_energy("normal", health="stale"), StepStatus.PASS, StepStatus.WARN, "mode normal"),
    ],
)
def test_load_capping_and_meter_health_from_the_daemon(
    *,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    energy: dict[str, Any],
    load: StepStatus,
    meter: StepStatus,
    words: str,
) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "gw.db"}"\n[control]\nsocket = "{tmp_path}/s"\n'
        '[site]\nlimit_a = 32\n[buses.main]\ntransport = "tcp"\nhost = "127.0.0.1"\n'
        '[[meters]]\nprofile = "eastron-sdm630"\n[[chargers]]\nid = "CP1"\n'
    )
    daemon = FakeDaemon(energy)
    monkeypatch.setattr(doctor_module, "running_daemon", lambda config, timeout: daemon)
    checks = {c.name: c for c in Doctor(path, skip_cloud=True).run().checks}
    assert checks["load"].status is load and words in checks["load"].detail
    assert checks["meter:site"].status is meter
    if meter is StepStatus.FAIL:
        assert "7 failed read(s) in a row: no answer" in checks["meter:site"].detail
        assert "check the unit id" in checks["meter:site"].detail  # the probe's own hint
