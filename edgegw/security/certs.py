"""The gateway's certificate files: which ones the configuration names, and how long they last.

``edgegw doctor`` and the daemon's :mod:`~edgegw.security.certwatch` both ask "does this
certificate still hold?", and must answer it the same way: one threshold
(:data:`CERT_WARN_DAYS`), one reading of a PEM file, one verdict (:class:`Validity`) and one
list of the configuration fields that name certificates (:func:`certificate_files`), so a
new certificate field is watched by both as soon as it is listed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final

from edgegw.config import Config

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "CERT_WARN_DAYS",
    "CertificateFile",
    "CertificateInfo",
    "Validity",
    "certificate_files",
    "read_certificates",
]

CERT_WARN_DAYS: Final = 30
"""A gateway certificate with fewer whole days than this left is about to expire."""

_DAY_S: Final = 86400


class Validity(StrEnum):
    """Where a certificate stands at one moment."""

    VALID = "valid"
    EXPIRING = "expiring"
    """Still valid, with fewer than :data:`CERT_WARN_DAYS` whole days left."""
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    """Its validity starts later: a certificate installed early, or a clock that is wrong."""


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What matters of one certificate for its expiry: who it names and when it holds."""

    subject: str
    """RFC 4514 form, e.g. ``CN=gateway.local,O=Site``."""
    not_before: datetime
    """Start of validity (UTC)."""
    not_after: datetime
    """End of validity (UTC)."""
    fingerprint: str
    """SHA-256 of the DER form (hex): tells a renewed certificate from the old one."""

    @classmethod
    def of(cls, certificate: x509.Certificate) -> CertificateInfo:
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 (read_certificates)

        return cls(
            subject=certificate.subject.rfc4514_string() or "(empty subject)",
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            fingerprint=certificate.fingerprint(hashes.SHA256()).hex(),
        )

    @property
    def since(self) -> str:
        """The first day it is valid, ``YYYY-MM-DD`` (UTC)."""
        return self.not_before.strftime("%Y-%m-%d")

    @property
    def until(self) -> str:
        """The day it expires, ``YYYY-MM-DD`` (UTC)."""
        return self.not_after.strftime("%Y-%m-%d")

    def days_left(self, now: float) -> int:
        """Whole days from ``now`` (a POSIX time) until it expires; negative once expired."""
        return int((self.not_after.timestamp() - now) // _DAY_S)

    def validity(self, now: float, warn_days: int = CERT_WARN_DAYS) -> Validity:
        """Its state at ``now``: expired first, then not yet valid, then expiring."""
        if self.not_after.timestamp() <= now:
            return Validity.EXPIRED
        if self.not_before.timestamp() > now:
            return Validity.NOT_YET_VALID
        if self.days_left(now) < warn_days:
            return Validity.EXPIRING
        return Validity.VALID


def read_certificates(path: Path) -> list[CertificateInfo]:
    """Every certificate of a PEM file, in file order (a chain starts with its leaf).

    Raises :class:`OSError` when the file cannot be read and :class:`ValueError` when it holds
    no PEM certificate: callers word the two differently (a path or permission problem, or the
    wrong file).
    """
    # Imported here, not at the top: cryptography (its Rust bindings) is 8 MiB of the daemon's
    # memory, which a site that names no certificate file never needs.
    from cryptography import x509  # noqa: PLC0415

    return [CertificateInfo.of(c) for c in x509.load_pem_x509_certificates(path.read_bytes())]


@dataclass(frozen=True, slots=True)
class CertificateFile:
    """One configuration field that names a certificate file, and what it is for."""

    key: str
    """Short name in reports: ``server``, ``cloud client``, ``cloud client CP1``..."""
    field: str
    """The configuration field, e.g. ``[server] tls_cert_file``."""
    path: Path
    is_ca: bool
    """A bundle of trusted CAs (any of them may be the one in use), not the gateway's own
    certificate chain (whose first certificate is the one presented)."""
    loaded_at_start: bool
    """Read once when the daemon starts (the OCPP server's TLS files): a renewed file takes
    effect only after a restart. Cloud files are read on every new cloud connection."""
    breaks: str
    """What stops working when it has expired, for the caretaker."""
    charger_id: str | None = None
    """The charger that alone uses it (a per-charger cloud client certificate)."""


def certificate_files(cfg: Config) -> Iterator[CertificateFile]:
    """Every certificate file ``cfg`` names, in a fixed order: the OCPP server's, then the
    cloud's, then each charger's own cloud client certificate."""
    server = cfg.server
    if server.tls_cert_file is not None:
        yield CertificateFile(
            "server",
            "[server] tls_cert_file",
            server.tls_cert_file,
            is_ca=False,
            loaded_at_start=True,
            breaks="chargers refuse the gateway's TLS connection (wss://)",
        )
    if server.tls_client_ca_file is not None:
        yield CertificateFile(
            "chargers' CA",
            "[server] tls_client_ca_file",
            server.tls_client_ca_file,
            is_ca=True,
            loaded_at_start=True,
            breaks="chargers' client certificates (Security Profile 3) no longer verify: "
            "those chargers cannot connect",
        )
    cloud = cfg.cloud
    if cloud is not None and cloud.ca_file is not None:
        yield CertificateFile(
            "cloud CA",
            "[cloud] ca_file",
            cloud.ca_file,
            is_ca=True,
            loaded_at_start=False,
            breaks="the gateway cannot verify the cloud's certificate: the cloud links fail",
        )
    if cloud is not None and cloud.tls_cert_file is not None:
        yield CertificateFile(
            "cloud client",
            "[cloud] tls_cert_file",
            cloud.tls_cert_file,
            is_ca=False,
            loaded_at_start=False,
            breaks="the cloud refuses the gateway's client certificate (Security Profile 3): "
            "the cloud links fail",
        )
    for charger in cfg.chargers:
        if charger.cloud_tls_cert_file is not None:
            yield CertificateFile(
                f"cloud client {charger.id}",
                f"[[chargers]] {charger.id} cloud_tls_cert_file",
                charger.cloud_tls_cert_file,
                is_ca=False,
                loaded_at_start=False,
                breaks=f"the cloud refuses {charger.id}'s client certificate "
                f"(Security Profile 3): its cloud link fails",
                charger_id=charger.id,
            )
