"""``edgegw cloud check`` against a real SimCloud (ws:// and wss:// with trustme certificates).

The CLI runs ``asyncio.run`` itself, so it is invoked in a worker thread while the simulated
cloud serves from the test's event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from typer.testing import CliRunner, Result

from edgegw.cli.main import app
from edgegw.config import CloudConfig
from edgegw.proxy.cloudcheck import BootFacts, Identity, StepStatus, boot_payload, check_cloud
from edgegw.sim.cloud import SimCloud
from edgegw.store.store import Store
from tests.v201.test_relay201 import Cloud201, cloud201  # noqa: F401

runner = CliRunner()

PASSWORD = "cloud-password-of-cp1"


async def invoke(*args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, app, list(args))


def write_config(
    tmp_path: Path, url: str, *, password: str | None = PASSWORD, ca_file: Path | None = None
) -> Path:
    lines = ["[cloud]", f'url = "{url}"', "connect_timeout = 2"]
    if ca_file is not None:
        lines.append(f'ca_file = "{ca_file}"')
    lines += ["[[chargers]]", 'id = "CP1"']
    if password is not None:
        lines.append(f'cloud_password = "{password}"')
    path = tmp_path / "edgegw.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def steps(result: Result) -> dict[str, dict[str, Any]]:
    data = json.loads(result.stdout)
    return {step["name"]: step for step in data["steps"]}


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud(passwords={"CP1": PASSWORD, "CP2": "other-password"}) as sim:
        yield sim


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that is bound but not listening: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# ws://
# --------------------------------------------------------------------------------------------


async def test_every_step_passes_with_the_right_password(cloud: SimCloud, tmp_path: Path) -> None:
    config = write_config(tmp_path, cloud.url)
    result = await invoke("cloud", "check", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "PASS  OCPP 1.6 handshake as CP1 (Basic auth as 'CP1')" in result.stdout
    assert "TLS certificate" in result.stdout and "clear text" in result.stdout
    assert "reachable and accepts every charger" in result.stdout
    assert PASSWORD not in result.output

    result = await invoke("cloud", "check", "-c", str(config), "--json")
    assert result.exit_code == 0
    by_name = steps(result)
    assert [s["status"] for s in by_name.values()] == ["pass", "pass", "skip", "pass"]
    assert by_name["ocpp:CP1"]["facts"]["subprotocol"] == "ocpp1.6"
    assert all(s["seconds"] is not None for n, s in by_name.items() if n != "tls")


async def test_wrong_password_is_a_401_naming_the_charger(cloud: SimCloud, tmp_path: Path) -> None:
    config = write_config(tmp_path, cloud.url, password="not-the-password")
    result = await invoke("cloud", "check", "-c", str(config))
    assert result.exit_code == 1
    assert "HTTP 401: the cloud refused the password for CP1" in result.stdout
    assert "check cloud_password (and cloud_username) of CP1" in result.stdout
    assert "not-the-password" not in result.output


async def test_missing_password_and_unknown_identity(cloud: SimCloud, tmp_path: Path) -> None:
    config = write_config(tmp_path, cloud.url, password=None)
    result = await invoke("cloud", "check", "-c", str(config), "-C", "CP1", "-C", "CP9", "--json")
    assert result.exit_code == 1
    by_name = steps(result)
    assert by_name["ocpp:CP1"]["detail"].startswith(
        "HTTP 401: the cloud wants a password for CP1 and none is configured"
    )
    assert by_name["ocpp:CP9"]["facts"]["http_status"] == 404
    assert "ask the operator to register CP9" in by_name["ocpp:CP9"]["hint"]


async def test_refused_port(refused_port: int, tmp_path: Path) -> None:
    config = write_config(tmp_path, f"ws://127.0.0.1:{refused_port}/ocpp")
    result = await invoke("cloud", "check", "-c", str(config), "--json")
    assert result.exit_code == 1
    by_name = steps(result)
    assert by_name["dns"]["status"] == "pass"
    assert by_name["tcp"]["status"] == "fail"
    assert (
        by_name["tcp"]["detail"]
        == f"connection refused: nothing listens on port {refused_port} of 127.0.0.1"
    )
    assert by_name["ocpp:CP1"]["status"] == "skip"
    assert by_name["ocpp:CP1"]["detail"] == "not tried: the TCP step failed"


async def test_dns_failure_without_a_configuration(tmp_path: Path) -> None:
    result = await invoke(
        "cloud",
        "check",
        "-c",
        str(tmp_path / "none.toml"),
        "--url",
        "wss://csms.edgegw-test.invalid/ocpp",
        "--charger",
        "CP1",
    )
    assert result.exit_code == 1
    assert "FAIL  DNS lookup of csms.edgegw-test.invalid" in result.stdout
    assert "does not exist" in result.stdout
    assert "check the host name in [cloud] url" in result.stdout
    assert result.stdout.count("skip") == 3
    assert "first: DNS lookup" in result.stdout


async def test_config_problems(tmp_path: Path) -> None:
    standalone = tmp_path / "standalone.toml"
    standalone.write_text('[[chargers]]\nid = "CP1"\n')
    result = await invoke("cloud", "check", "-c", str(standalone))
    assert result.exit_code == 3
    assert "no [cloud] section" in result.output
    result = await invoke("cloud", "check", "-c", str(tmp_path / "none.toml"), "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["ok"] is False
    result = await invoke("cloud", "check", "-c", str(standalone), "--url", "http://x")
    assert result.exit_code == 2


async def test_a_server_that_never_answers_the_handshake(tmp_path: Path) -> None:
    accepted = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        accepted.set()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        cloud = CloudConfig(url=f"wss://127.0.0.1:{port}/ocpp")
        report = await check_cloud(cloud, [Identity("CP1")], timeout=0.3)
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
    assert accepted.is_set()
    tls = report.steps[2]
    assert (tls.name, tls.status) == ("tls", StepStatus.FAIL)
    assert "did not finish within 0.3 s" in tls.detail
    assert not report.ok


# --------------------------------------------------------------------------------------------
# wss://
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "cloud-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def tls_url(sim: SimCloud) -> str:
    return sim.url.replace("127.0.0.1", "localhost")


async def test_trusted_certificate_passes_with_its_details(
    ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    async with SimCloud(passwords={"CP1": PASSWORD}, ssl=server_context(cert)) as sim:
        config = write_config(tmp_path, tls_url(sim), ca_file=ca_file)
        result = await invoke("cloud", "check", "-c", str(config), "--json")
    assert result.exit_code == 0, result.output
    tls = steps(result)["tls"]
    assert tls["status"] == "pass"
    assert tls["facts"]["hostname_matches"] is True
    assert tls["facts"]["issuer"].startswith("trustme")
    assert "localhost" in tls["facts"]["names"]
    assert tls["facts"]["days_left"] > 365
    assert steps(result)["ocpp:CP1"]["status"] == "pass"


async def test_untrusted_certificate_says_to_set_ca_file(ca: trustme.CA, tmp_path: Path) -> None:
    cert = ca.issue_cert("localhost")
    async with SimCloud(passwords={"CP1": PASSWORD}, ssl=server_context(cert)) as sim:
        config = write_config(tmp_path, tls_url(sim))  # no ca_file: the system CAs only
        result = await invoke("cloud", "check", "-c", str(config))
    assert result.exit_code == 1
    assert "FAIL  TLS certificate of localhost" in result.stdout
    assert "is not trusted (unable to get local issuer certificate)" in result.stdout
    assert "set [cloud] ca_file" in result.stdout
    assert "skip  OCPP 1.6 handshake as CP1" in result.stdout


async def test_expired_certificate(ca: trustme.CA, ca_file: Path, tmp_path: Path) -> None:
    cert = ca.issue_cert(
        "localhost",
        not_before=datetime.datetime(2020, 1, 1),
        not_after=datetime.datetime(2021, 1, 1),
    )
    async with SimCloud(passwords={"CP1": PASSWORD}, ssl=server_context(cert)) as sim:
        config = write_config(tmp_path, tls_url(sim), ca_file=ca_file)
        result = await invoke("cloud", "check", "-c", str(config), "--json")
    assert result.exit_code == 1
    tls = steps(result)["tls"]
    assert tls["detail"] == "the CSMS certificate expired on 2021-01-01"
    assert "renew" in tls["hint"] and "timedatectl" in tls["hint"]


async def test_certificate_for_another_host(ca: trustme.CA, ca_file: Path, tmp_path: Path) -> None:
    cert = ca.issue_cert("csms.example.com")
    async with SimCloud(passwords={"CP1": PASSWORD}, ssl=server_context(cert)) as sim:
        config = write_config(tmp_path, tls_url(sim), ca_file=ca_file)
        result = await invoke("cloud", "check", "-c", str(config), "--json")
    assert result.exit_code == 1
    tls = steps(result)["tls"]
    assert tls["detail"] == "the certificate is for csms.example.com, not for localhost"


async def test_certificate_about_to_expire_is_a_warning(
    ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)
    cert = ca.issue_cert("localhost", not_after=soon.replace(tzinfo=None))
    async with SimCloud(passwords={"CP1": PASSWORD}, ssl=server_context(cert)) as sim:
        config = write_config(tmp_path, tls_url(sim), ca_file=ca_file)
        result = await invoke("cloud", "check", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "WARN  TLS certificate of localhost" in result.stdout
    assert "expires in 9 days" in result.stdout or "expires in 10 days" in result.stdout


async def test_wss_url_on_a_plain_port(cloud: SimCloud) -> None:
    url = cloud.url.replace("ws://", "wss://")
    report = await check_cloud(CloudConfig(url=url), [Identity("CP1")], timeout=2)
    tls = report.steps[2]
    assert tls.status is StepStatus.FAIL
    assert "TLS handshake" in tls.detail
    assert "speak TLS" in tls.hint and "wss://" in tls.hint


async def test_a_ca_file_that_does_not_load(ca: trustme.CA, tmp_path: Path) -> None:
    cert = ca.issue_cert("localhost")
    bad_ca = tmp_path / "bad-ca.pem"
    bad_ca.write_text("not a certificate\n")
    async with SimCloud(passwords={"CP1": PASSWORD}, ssl=server_context(cert)) as sim:
        config = write_config(tmp_path, tls_url(sim), ca_file=bad_ca)
        result = await invoke("cloud", "check", "-c", str(config), "--json")
    assert result.exit_code == 1
    tls = steps(result)["tls"]
    assert tls["status"] == "fail" and tls["detail"].startswith("cannot set up TLS")
    assert "ca_file" in tls["hint"]


# --------------------------------------------------------------------------------------------
# OCPP 2.0.1
# --------------------------------------------------------------------------------------------


async def test_a_201_cloud_is_checked_in_201_with_its_boot(
    cloud201: Cloud201,  # noqa: F811
    tmp_path: Path,
) -> None:
    """``--ocpp 2.0.1`` offers ocpp2.0.1 (a 1.6-only CSMS fails, saying so); ``--boot`` sends
    the charger's own last BootNotification in 2.0.1 form and reads the CSMS's answer."""
    store = tmp_path / "gw.db"
    db = await Store.open(store)
    await db.charger_seen("CP1", "192.0.2.7", connected=False)
    await db.record_boot(
        "CP1",
        {
            "chargePointVendor": "Acme",
            "chargePointModel": "Wallbox 2",
            "chargePointSerialNumber": "SN-77",
            "firmwareVersion": "4.1",
        },
    )
    await db.close()
    config = write_config(tmp_path, cloud201.url, password=None)
    config.write_text(config.read_text() + f'[store]\npath = "{store}"\n')
    as16 = await invoke("cloud", "check", "-c", str(config), "--json")
    assert as16.exit_code == 1
    assert steps(as16)["ocpp:CP1"]["status"] == "fail"  # it speaks 2.0.1 only

    result = await invoke("cloud", "check", "-c", str(config), "--ocpp", "2.0.1", "--boot")
    assert result.exit_code == 0, result.output
    assert "PASS  OCPP 2.0.1 handshake as CP1 (no password)" in result.stdout
    assert "BootNotification Accepted" in result.stdout
    boots = [payload for action, payload in cloud201.heard["CP1"] if action == "BootNotification"]
    assert boots == [
        {
            "vendor_name": "Acme",
            "model": "Wallbox 2",
            "serial_number": "SN-77",
            "firmware_version": "4.1",
        }
    ]
    bad = await invoke("cloud", "check", "-c", str(config), "--ocpp", "2.1")
    assert bad.exit_code == 2 and "give 1.6 or 2.0.1" in bad.output


def test_a_boot_in_each_versions_form() -> None:
    facts = BootFacts("Acme", "Wallbox 2")
    assert boot_payload("ocpp1.6", facts) == {
        "chargePointVendor": "Acme",
        "chargePointModel": "Wallbox 2",
    }
    assert boot_payload("ocpp2.0.1", facts) == {
        "reason": "PowerUp",
        "chargingStation": {"vendorName": "Acme", "model": "Wallbox 2"},
    }
