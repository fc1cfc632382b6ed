"""The TLS step of a cloud check: the CSMS certificate verified, and when it does not, what is
wrong with it (expired, not yet valid, private CA, another name) read from the certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from edgegw.config import CloudConfig
from edgegw.proxy.cloudcheck_steps import CheckStep, StepStatus, _Stopwatch, _Target
from edgegw.security import certs

CERT_WARN_DAYS: Final = certs.CERT_WARN_DAYS
"""A certificate expiring within this many days passes with a warning (as the gateway's own)."""


# OpenSSL X509_V_ERR_* codes that point the installer at different fixes.
_NOT_YET_VALID: Final = 9


_EXPIRED: Final = 10


_UNTRUSTED: Final = frozenset({2, 18, 19, 20, 21})


_HOSTNAME_MISMATCH: Final = 62


TlsContextFactory = Callable[[str | None], ssl.SSLContext]
"""Builds the client TLS context for a charger id (``None``: the gateway's own check)."""


def _ssl_context(cloud: CloudConfig) -> ssl.SSLContext:
    """The verification the gateway's upstream uses by default (system CAs or ``ca_file``)."""
    context = ssl.create_default_context(
        cafile=str(cloud.ca_file) if cloud.ca_file is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _name(parts: Any, key: str) -> str | None:
    """One attribute (e.g. ``commonName``) from ``getpeercert()``'s subject/issuer tuples."""
    for rdn in parts or ():
        for name, value in rdn:
            if name == key:
                return str(value)
    return None


def _verified_facts(cert: Mapping[str, Any], now: float) -> dict[str, Any]:
    not_after = ssl.cert_time_to_seconds(str(cert["notAfter"]))
    issuer = _name(cert.get("issuer"), "organizationName") or _name(
        cert.get("issuer"), "commonName"
    )
    return {
        "subject": _name(cert.get("subject"), "commonName"),
        "names": [str(value) for _, value in cert.get("subjectAltName", ())],
        "issuer": issuer,
        "not_after": datetime.fromtimestamp(not_after, UTC).isoformat(),
        "days_left": int((not_after - now) // 86400),
    }


def _unverified_facts(der: bytes, now: float) -> dict[str, Any]:
    """What an unverified certificate says, if ``cryptography`` is there to read it."""
    try:
        from cryptography import x509  # noqa: PLC0415 - optional, only for failed checks
        from cryptography.x509.oid import NameOID  # noqa: PLC0415
    except ImportError:
        return {}
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return {}

    def first(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
        values = name.get_attributes_for_oid(oid)
        return str(values[0].value) if values else None

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in san]
    except x509.ExtensionNotFound:
        names = []
    not_after = cert.not_valid_after_utc
    return {
        "subject": first(cert.subject, NameOID.COMMON_NAME),
        "names": names,
        "issuer": first(cert.issuer, NameOID.ORGANIZATION_NAME)
        or first(cert.issuer, NameOID.COMMON_NAME),
        "not_after": not_after.isoformat(),
        "days_left": int((not_after.timestamp() - now) // 86400),
        "self_signed": cert.issuer == cert.subject,
    }


async def _peer_der(target: _Target, address: str, timeout: float) -> bytes | None:
    """The server's certificate without verifying it, to explain why verification failed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                address, target.port, ssl=context, server_hostname=target.host
            )
    except (OSError, TimeoutError):
        return None
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return der if isinstance(der, bytes) else None


def _verify_failure(
    exc: ssl.SSLCertVerificationError, target: _Target, facts: Mapping[str, Any]
) -> tuple[str, str]:
    message = exc.verify_message or exc.reason or str(exc)
    code = exc.verify_code
    if code == _EXPIRED:
        when = f" on {facts['not_after'][:10]}" if "not_after" in facts else ""
        return (
            f"the CSMS certificate expired{when}",
            "the operator must renew its certificate; if the date looks wrong, check the "
            "gateway's clock (timedatectl)",
        )
    if code == _NOT_YET_VALID:
        return (
            "the CSMS certificate is not valid yet",
            "the gateway's clock is probably wrong: check it with timedatectl (NTP)",
        )
    if code == _HOSTNAME_MISMATCH:
        names = ", ".join(facts.get("names", ())) or "other names"
        return (
            f"the certificate is for {names}, not for {target.host}",
            "use the host name the certificate was issued for in [cloud] url (ask the "
            "operator for the exact URL)",
        )
    if code in _UNTRUSTED:
        issuer = f" issued by {facts['issuer']!r}" if facts.get("issuer") else ""
        return (
            f"the certificate{issuer} is not trusted ({message})",
            "the CSMS uses a private or self-signed CA: get the operator's CA certificate and "
            "set [cloud] ca_file to it (or fix the CSMS certificate chain)",
        )
    return (f"certificate verification failed: {message}", "ask the operator about its certificate")


async def _tls(
    target: _Target,
    address: str,
    context: ssl.SSLContext,
    *,
    timeout: float,
    now: float,
    warn_days: int,
) -> CheckStep:
    title = f"TLS certificate of {target.host}"
    watch = _Stopwatch()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                address, target.port, ssl=context, server_hostname=target.host
            )
    except ssl.SSLCertVerificationError as exc:
        seconds = watch.seconds
        der = await _peer_der(target, address, timeout)
        facts = _unverified_facts(der, now) if der else {}
        detail, hint = _verify_failure(exc, target, facts)
        return CheckStep("tls", title, StepStatus.FAIL, detail, seconds, hint, facts)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        hint = "the CSMS may need an older TLS version than 1.2, or this port is not TLS"
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            hint = "this port does not speak TLS: use ws:// for it, or the CSMS's TLS port"
        return CheckStep(
            "tls", title, StepStatus.FAIL, f"TLS handshake failed ({reason})", watch.seconds, hint
        )
    except TimeoutError:
        return CheckStep(
            "tls",
            title,
            StepStatus.FAIL,
            f"the TLS handshake did not finish within {timeout:g} s",
            watch.seconds,
            "the port accepts connections but does not answer TLS: check ws:// vs wss:// and "
            "the port in [cloud] url",
        )
    except (ConnectionError, OSError) as exc:
        return CheckStep(
            "tls",
            title,
            StepStatus.FAIL,
            f"the server closed the connection during the TLS handshake "
            f"({exc.strerror or type(exc).__name__})",
            watch.seconds,
            "this port may not speak TLS (check ws:// vs wss:// and the port), or a firewall "
            "or proxy interferes",
        )
    seconds = watch.seconds
    ssl_object = writer.get_extra_info("ssl_object")
    cert: Mapping[str, Any] = ssl_object.getpeercert() if ssl_object is not None else {}
    facts = _verified_facts(cert, now)
    facts["tls_version"] = ssl_object.version() if ssl_object is not None else None
    facts["hostname_matches"] = True
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    days = int(facts["days_left"])
    detail = (
        f"trusted, valid for {target.host}, issued by {facts['issuer']!r}, expires "
        f"{facts['not_after'][:10]} ({days} days left), {facts['tls_version']}"
    )
    if days < warn_days:
        return CheckStep(
            "tls",
            title,
            StepStatus.WARN,
            detail,
            seconds,
            f"the certificate expires in {days} days: remind the operator to renew it",
            facts,
        )
    return CheckStep("tls", title, StepStatus.PASS, detail, seconds, facts=facts)
