"""Helpers for the security tests: certificates made on the fly, TLS gateways, log waiting."""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from edgegw.daemon import Gateway
from tests.conftest import GatewayFactory

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Pki:
    """Certificate authorities and files for one test (everything under ``root``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.site_ca = trustme.CA(organization_name="site")  # signs the gateway's server cert
        self.charger_ca = trustme.CA(organization_name="chargers")  # signs charger certs
        self._count = 0

    def write(self, blob: trustme.Blob, name: str) -> Path:
        self._count += 1
        path = self.root / f"{self._count}-{name}"
        blob.write_to_path(str(path))
        return path

    def leaf_files(self, cert: trustme.LeafCert, name: str = "leaf") -> tuple[Path, Path]:
        chain = b"".join(pem.bytes() for pem in cert.cert_chain_pems)
        cert_path = self.root / f"{name}-{self._count}.crt"
        cert_path.write_bytes(chain)
        key_path = self.write(cert.private_key_pem, f"{name}.key")
        return cert_path, key_path

    def server_section(
        self, *, expired: bool = False, client_ca: bool = True, **extra: Any
    ) -> dict[str, Any]:
        """``[server]`` keys for a TLS gateway on 127.0.0.1."""
        cert = issue(self.site_ca, "127.0.0.1", "localhost", expired=expired)
        cert_file, key_file = self.leaf_files(cert, "server")
        section: dict[str, Any] = {"tls_cert_file": str(cert_file), "tls_key_file": str(key_file)}
        if client_ca:
            section["tls_client_ca_file"] = str(self.write(self.charger_ca.cert_pem, "ca.pem"))
        return section | extra

    def charger_context(
        self,
        cn: str | None = None,
        *,
        trust: trustme.CA | None = None,
        issuer: trustme.CA | None = None,
        expired: bool = False,
    ) -> ssl.SSLContext:
        """A charger's TLS client context: trusts ``trust`` (the site CA), with a client
        certificate for ``cn`` from ``issuer`` (the charger CA) when ``cn`` is given."""
        context = ssl.create_default_context()
        (trust or self.site_ca).configure_trust(context)
        if cn is not None:
            issue(
                issuer or self.charger_ca, f"{cn.lower()}.chargers.test", cn=cn, expired=expired
            ).configure_cert(context)
        return context


def issue(
    ca: trustme.CA, *identities: str, cn: str | None = None, expired: bool = False
) -> trustme.LeafCert:
    if expired:
        now = datetime.datetime.now(datetime.UTC)
        return ca.issue_cert(
            *identities,
            common_name=cn,
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
    return ca.issue_cert(*identities, common_name=cn)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    root = tmp_path / "pki"
    root.mkdir()
    return Pki(root)


def wss_url(gateway: Gateway) -> str:
    assert gateway.server is not None and gateway.server.tls_port is not None
    return f"wss://127.0.0.1:{gateway.server.tls_port}/ocpp"


def ws_url(gateway: Gateway) -> str:
    assert gateway.server is not None
    return f"ws://127.0.0.1:{gateway.server.port}/ocpp"


async def start_tls_gateway(
    make_gateway: GatewayFactory, pki: Pki, *, server: dict[str, Any] | None = None, **kw: Any
) -> Gateway:
    return await make_gateway(server=pki.server_section(**(server or {})), **kw)


class LogWatcher(logging.Handler):
    """Collects log records; :meth:`wait_for` returns once a matching one was logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self._changed: asyncio.Event | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if self._changed is not None:
            self._changed.set()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait_for(self, text: str, timeout: float = 5.0) -> str:
        self._changed = asyncio.Event()
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                await self._changed.wait()
                self._changed.clear()


@pytest.fixture
def logs() -> Iterator[LogWatcher]:
    watcher = LogWatcher()
    root = logging.getLogger("edgegw")
    previous = root.level
    root.setLevel(logging.INFO)
    root.addHandler(watcher)
    yield watcher
    root.removeHandler(watcher)
    root.setLevel(previous)
