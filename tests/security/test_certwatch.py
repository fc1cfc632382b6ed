"""The daemon's certificate watch: real certificates (trustme), a fake clock, a fake day."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import trustme

from edgegw.cli.doctor import CERT_WARN_DAYS as DOCTOR_WARN_DAYS
from edgegw.cli.doctor import check_certificate
from edgegw.config import Config, parse_config
from edgegw.proxy.cloudcheck import StepStatus
from edgegw.security.certs import CERT_WARN_DAYS, certificate_files
from edgegw.security.certwatch import CHECK_INTERVAL_S, CertWatch, Finding
from edgegw.store.store import Store

DAY = 86400.0
LOGGER = "edgegw.security.certwatch"


class Clock:
    """Wall time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Events:
    """Records what the watch hands to the store, with :meth:`Store.event`'s signature."""

    def __init__(self) -> None:
        self.recorded: list[dict[str, Any]] = []

    async def __call__(
        self,
        kind: str,
        message: str,
        *,
        charger_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.recorded.append(
            {"kind": kind, "message": message, "charger_id": charger_id, "data": data}
        )

    def kinds(self) -> list[str]:
        return [e["kind"] for e in self.recorded]


class Site:
    """Certificate files for one test, and configurations naming them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = trustme.CA(organization_name="site")

    def leaf(self, name: str, days: float, *, starts_in: float = -100) -> Path:
        """A certificate (and its key, ``<name>.key``) valid until ``days`` from now."""
        now = dt.datetime.now(dt.UTC)
        cert = self.ca.issue_cert(
            f"{name}.test",
            common_name=name,
            not_before=now + dt.timedelta(days=starts_in),
            not_after=now + dt.timedelta(days=days),
        )
        path = self.root / f"{name}.crt"
        path.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(self.root / f"{name}.key"))
        return path

    def ca_file(self) -> Path:
        path = self.root / "chargers-ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def key(self, cert: Path) -> str:
        return str(cert.with_suffix(".key"))

    def config(
        self,
        *,
        server: Path | None = None,
        client_ca: Path | None = None,
        cloud_ca: Path | None = None,
        cloud: Path | None = None,
        chargers: dict[str, Path | None] | None = None,
    ) -> Config:
        data: dict[str, Any] = {"server": {"host": "127.0.0.1", "port": 0}}
        if server is not None:
            # Profile 3 authenticates chargers by certificate; without a CA, a TLS port beside
            # the plain one (profile 2 would need a password for every charger).
            mode = {"security_profile": 3} if client_ca else {"tls_port": 0}
            data["server"] |= mode | {
                "tls_cert_file": str(server),
                "tls_key_file": self.key(server),
            }
        if client_ca is not None:
            data["server"]["tls_client_ca_file"] = str(client_ca)
        if cloud_ca is not None or cloud is not None:
            data["cloud"] = {"url": "wss://csms.example.com/ocpp"}
        if cloud_ca is not None:
            data["cloud"]["ca_file"] = str(cloud_ca)
        if cloud is not None:
            data["cloud"] |= {"tls_cert_file": str(cloud), "tls_key_file": self.key(cloud)}
        data["chargers"] = [
            {"id": cid}
            | (
                {}
                if cert is None
                else {"cloud_tls_cert_file": str(cert), "cloud_tls_key_file": self.key(cert)}
            )
            for cid, cert in (chargers or {"CP1": None}).items()
        ]
        return parse_config(data)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def lines(caplog: pytest.LogCaptureFixture, level: int | None = None) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and (level is None or r.levelno == level)
    ]


def watch(config: Config, clock: Clock, events: Events | None = None, **kw: Any) -> CertWatch:
    return CertWatch(config, record_event=events or Events(), clock=clock, **kw)


# ------------------------------------------------------------------------------------------


async def test_expiring_and_expired_certificates_are_logged_and_recorded(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    server = site.leaf("gateway", days=10)
    cloud = site.leaf("gateway-client", days=-2)
    config = site.config(
        server=server,
        client_ca=site.ca_file(),
        cloud_ca=site.ca_file(),
        cloud=cloud,
        chargers={"CP1": site.leaf("cp1-client", days=365), "CP2": None},
    )
    events, clock = Events(), Clock()
    certwatch = watch(config, clock, events)
    try:
        found = await certwatch.start()
    finally:
        await certwatch.close()

    assert [f.state for f in found] == ["expiring", "expired"]
    (warning,) = lines(logs, logging.WARNING)
    assert warning.startswith(f"server certificate {server} (CN=gateway,")
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).strftime("%Y-%m-%d")
    assert f"expires on {until}, in 9 day(s)" in warning
    assert "chargers refuse the gateway's TLS connection" in warning
    (error,) = lines(logs, logging.ERROR)
    assert error.startswith(f"cloud client certificate {cloud} (CN=gateway-client,")
    assert "expired on" in error and "(2 day(s) ago)" in error
    assert "the cloud refuses the gateway's client certificate" in error

    assert events.kinds() == ["security.certificate_expiring", "security.certificate_expired"]
    assert [e["message"] for e in events.recorded] == [warning, error]
    first = events.recorded[0]
    assert first["charger_id"] is None
    assert first["data"]["file"] == str(server)
    assert first["data"]["fields"] == ["[server] tls_cert_file"]
    assert first["data"]["days_left"] == 9 and first["data"]["restart_needed"] is False
    assert first["data"]["not_after"].startswith(until)
    assert events.recorded[1]["data"]["state"] == "expired"
    assert [p.state for p in certwatch.problems] == ["expiring", "expired"]


async def test_every_configured_certificate_file_is_watched(site: Site) -> None:
    files = {
        "server": site.leaf("gateway", days=365),
        "client_ca": site.ca_file(),
        "cloud_ca": site.root / "cloud-ca.pem",
        "cloud": site.leaf("gateway-client", days=365),
    }
    site.ca.cert_pem.write_to_path(str(files["cloud_ca"]))
    cp1 = site.leaf("cp1-client", days=365)
    config = site.config(**files, chargers={"CP1": cp1})
    assert CertWatch(config).files == [*files.values(), cp1]
    fields = [f.field for f in certificate_files(config)]
    assert fields == [
        "[server] tls_cert_file",
        "[server] tls_client_ca_file",
        "[cloud] ca_file",
        "[cloud] tls_cert_file",
        "[[chargers]] CP1 cloud_tls_cert_file",
    ]


async def test_a_warning_is_given_at_most_once_a_day(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    config = site.config(server=site.leaf("gateway", days=10))
    events, clock = Events(), Clock()
    certwatch = watch(config, clock, events)

    assert len(await certwatch.check_now()) == 1
    assert await certwatch.check_now() == []  # a reload right after start
    clock.advance(12 * 3600)
    assert await certwatch.check_now() == []
    clock.advance(12 * 3600)  # the next day's check
    (again,) = await certwatch.check_now()
    assert "in 8 day(s)" in again.message
    assert await certwatch.check_now() == []

    assert len(lines(logs, logging.WARNING)) == 2
    assert events.kinds() == ["security.certificate_expiring"] * 2


async def test_a_certificate_expiring_today_is_reported_again_when_it_expires(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    config = site.config(cloud=site.leaf("gateway-client", days=0.5))
    events, clock = Events(), Clock()
    certwatch = watch(config, clock, events)

    (expiring,) = await certwatch.check_now()
    assert expiring.level == logging.WARNING and "in 0 day(s)" in expiring.message
    clock.advance(13 * 3600)  # the same day, but now it no longer works
    (expired,) = await certwatch.check_now()
    assert expired.level == logging.ERROR and expired.state == "expired"
    assert events.kinds() == ["security.certificate_expiring", "security.certificate_expired"]


async def test_an_unreadable_file_is_reported_once(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    cert = site.leaf("cp1-client", days=365)
    config = site.config(cloud_ca=site.ca_file(), chargers={"CP1": cert})
    events, clock = Events(), Clock()
    certwatch = watch(config, clock, events)
    assert await certwatch.check_now() == []

    original = cert.read_bytes()
    cert.write_text("not a certificate")  # replaced on disk while the daemon runs
    (junk,) = await certwatch.check_now()
    for _day in range(3):
        clock.advance(DAY)
        assert await certwatch.check_now() == []
    assert junk.state == "unreadable" and junk.charger_id == "CP1"
    (error,) = lines(logs, logging.ERROR)
    assert error == (
        f"cloud client CP1 certificate {cert} cannot be used (it holds no PEM certificate): "
        "new cloud connections fail, and edgegw will not restart with this file; "
        "fix or replace the file"
    )
    assert events.recorded[0]["charger_id"] == "CP1"
    assert events.recorded[0]["data"]["error"] == "it holds no PEM certificate"

    cert.write_bytes(original)
    assert await certwatch.check_now() == []
    assert f"cloud client CP1 certificate {cert} can be read again" in lines(logs, logging.INFO)

    cert.unlink()  # gone: a new problem, reported once more
    (missing,) = await certwatch.check_now()
    assert "cannot read it: No such file or directory" in missing.message
    assert await certwatch.check_now() == []
    assert events.kinds() == ["security.certificate_unreadable"] * 2


async def test_a_renewed_cloud_certificate_ends_the_warnings(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    config = site.config(cloud=site.leaf("gateway-client", days=5))
    events, clock = Events(), Clock()
    certwatch = watch(config, clock, events)
    assert len(await certwatch.check_now()) == 1

    site.leaf("gateway-client", days=400)  # the same file, renewed (read on each connection)
    assert await certwatch.check_now() == []
    assert certwatch.problems == []
    (info,) = lines(logs, logging.INFO)
    assert info.startswith("cloud client certificate") and "is valid until" in info
    clock.advance(DAY)
    assert await certwatch.check_now() == []
    assert len(events.recorded) == 1


async def test_a_renewed_server_certificate_needs_a_restart(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    server = site.leaf("gateway", days=10)
    config = site.config(server=server)
    events, clock = Events(), Clock()
    certwatch = watch(config, clock, events)
    await certwatch.check_now()  # at start: the certificate the OCPP server loaded

    site.leaf("gateway", days=400)  # renewed on disk; the server still has the old one
    (still,) = await certwatch.check_now()  # a changed warning is not held back a day
    assert still.state == "expiring"
    assert still.message.endswith("restart edgegw to use it")
    assert "the file now holds another certificate (valid until" in still.message
    assert events.recorded[-1]["data"]["restart_needed"] is True

    restarted = watch(config, clock, Events())
    assert await restarted.check_now() == []


async def test_a_certificate_not_valid_yet_is_an_error(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    config = site.config(server=site.leaf("gateway", days=400, starts_in=2))
    (early,) = await watch(config, Clock()).check_now()
    assert early.level == logging.ERROR and early.kind == "security.certificate_not_yet_valid"
    assert "is valid only from" in early.message and "system clock is wrong" in early.message


async def test_a_ca_bundle_is_judged_by_its_longest_lasting_certificate(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    old = site.leaf("old-ca", days=-30).read_bytes()
    new = site.leaf("new-ca", days=800).read_bytes()
    bundle = site.root / "bundle.pem"
    bundle.write_bytes(old + new)  # a rotation: the old CA is kept a while
    config = site.config(cloud_ca=bundle)
    clock = Clock()
    assert await watch(config, clock).check_now() == []

    bundle.write_bytes(old + site.leaf("last-ca", days=3).read_bytes())
    (ending,) = await watch(config, clock).check_now()
    assert ending.state == "expiring" and "(CN=last-ca," in ending.message
    assert "the gateway cannot verify the cloud's certificate" in ending.message


async def test_a_file_shared_by_chargers_is_reported_once(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    shared = site.leaf("fleet-client", days=7)
    config = site.config(chargers={"CP1": shared, "CP2": shared})
    events = Events()
    (finding,) = await watch(config, Clock(), events).check_now()
    assert finding.message.startswith(f"cloud client CP1 and cloud client CP2 certificate {shared}")
    assert "the cloud refuses CP1's client certificate" in finding.message
    assert "the cloud refuses CP2's client certificate" in finding.message
    assert events.recorded[0]["charger_id"] is None
    assert events.recorded[0]["data"]["fields"] == [
        "[[chargers]] CP1 cloud_tls_cert_file",
        "[[chargers]] CP2 cloud_tls_cert_file",
    ]


async def test_a_reloaded_configuration_forgets_removed_files(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    cp1 = site.leaf("cp1-client", days=5)
    cp2 = site.leaf("cp2-client", days=5)
    clock = Clock()
    certwatch = watch(site.config(chargers={"CP1": cp1, "CP2": cp2}), clock)
    assert [f.charger_id for f in await certwatch.check_now()] == ["CP1", "CP2"]

    certwatch.use_config(site.config(chargers={"CP2": cp2}))
    assert await certwatch.check_now() == []  # CP2 already warned today
    assert [p.charger_id for p in certwatch.problems] == ["CP2"]
    certwatch.use_config(site.config(chargers={"CP1": cp1, "CP2": cp2}))
    assert [f.charger_id for f in await certwatch.check_now()] == ["CP1"]


async def test_the_daily_loop_checks_once_a_day_until_closed(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    naps: asyncio.Queue[tuple[float, asyncio.Future[None]]] = asyncio.Queue()

    async def sleep(seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        await naps.put((seconds, wake))
        await wake

    events = Events()
    config = site.config(server=site.leaf("gateway", days=2))
    certwatch = CertWatch(config, record_event=events, clock=clock, sleep=sleep)
    try:
        assert len(await certwatch.start()) == 1  # the check at start happens before it returns
        with pytest.raises(RuntimeError, match="already started"):
            await certwatch.start()
        seconds, wake = await asyncio.wait_for(naps.get(), 5)
        for day in (1, 2):
            assert seconds == CHECK_INTERVAL_S
            clock.advance(seconds)
            wake.set_result(None)
            # The next nap begins only once that day's check is done.
            seconds, wake = await asyncio.wait_for(naps.get(), 5)
            assert len(events.recorded) == day + 1
        assert events.kinds()[-1] == "security.certificate_expired"
    finally:
        await certwatch.close()
    assert certwatch._tasks.tasks == frozenset()


async def test_a_failing_event_store_does_not_stop_the_watch(
    site: Site, logs: pytest.LogCaptureFixture
) -> None:
    async def broken(kind: str, message: str, **_kw: Any) -> None:
        raise OSError("database is locked")

    config = site.config(server=site.leaf("gateway", days=10))
    certwatch = CertWatch(config, record_event=broken, clock=Clock())
    (found,) = await certwatch.check_now()
    assert lines(logs, logging.WARNING) == [
        found.message,
        "recording the security.certificate_expiring event failed",
    ]


async def test_events_land_in_the_store(site: Site, tmp_path: Path) -> None:
    config = site.config(cloud=site.leaf("gateway-client", days=-1))
    store = await Store.open(tmp_path / "edgegw.db")
    try:
        certwatch = CertWatch(config, record_event=store.event)
        (found,) = await certwatch.check_now()
        ((_at, kind, charger_id, message),) = await store.events()
    finally:
        await store.close()
    assert (kind, charger_id, message) == ("security.certificate_expired", None, found.message)


@pytest.mark.parametrize(("days", "warns"), [(29.5, True), (30.5, False)])
async def test_the_watch_and_doctor_share_one_threshold(
    site: Site, days: float, warns: bool
) -> None:
    assert DOCTOR_WARN_DAYS is CERT_WARN_DAYS
    cert = site.leaf("gateway", days=days)
    found: list[Finding] = await watch(site.config(server=cert), Clock()).check_now()
    doctor = check_certificate("server", cert, time.time())
    assert bool(found) is warns
    assert (doctor.status is StepStatus.WARN) is warns
