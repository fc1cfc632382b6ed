"""TLS contexts for OCPP Security Profiles 2 and 3, on both sides of the gateway.

Towards chargers the gateway is the TLS server: its certificate and key from files, TLS 1.2 or
newer, and (for profile 3) client certificates checked against the configured CA. Client
certificates are *optional* at the TLS layer on purpose: which profile a charger needs is only
known once its identity is read from the URL, so the per-charger decision (and its log line)
happens at the HTTP upgrade, see :mod:`edgegw.proxy.server`. A certificate that is presented
must still verify, or the TLS handshake fails.

Towards the cloud the gateway is the TLS client: the configured CA file replaces the system
bundle (pinning the operator's CA), host names are checked, and a client certificate is
presented for profile 3.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

# OCPP 1.6 security white paper: a CSMS must offer these (TLS 1.2); the ECDHE suites come first
# because they give forward secrecy. TLS 1.3 suites are not affected by this string.
OCPP_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "AES128-GCM-SHA256:AES256-GCM-SHA384"
)


class TlsSetupError(RuntimeError):
    """A certificate, key or CA file could not be loaded; the message names the file."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def server_context(
    cert_file: Path, key_file: Path, client_ca_file: Path | None = None
) -> ssl.SSLContext:
    """The charger-facing context: TLS >= 1.2, our certificate, optional client certificates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(OCPP_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(
            f"cannot load server.tls_cert_file {cert_file} with its key: {_reason(exc)}"
        ) from None
    if client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsSetupError(
                f"cannot load server.tls_client_ca_file {client_ca_file}: {_reason(exc)}"
            ) from None
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """The cloud-facing context: verified server, TLS >= 1.2, optional client certificate.

    With ``ca_file`` only that CA is trusted (the system bundle is not loaded).
    """
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"cannot load cloud.ca_file {ca_file}: {_reason(exc)}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            key = f"key {key_file}" if key_file else "key (in the same file)"
            raise TlsSetupError(
                f"cannot load the cloud client certificate {cert_file} with its {key}: "
                f"{_reason(exc)}"
            ) from None
    return context


def common_name(cert: dict[str, Any] | None) -> str | None:
    """The subject CN of a certificate as returned by ``SSLObject.getpeercert()``.

    None when there is no certificate, no CN, or several different ones (ambiguous).
    """
    if not cert:
        return None
    names = {
        value
        for rdn in cert.get("subject", ())
        for key, value in rdn
        if key == "commonName" and isinstance(value, str)
    }
    return names.pop() if len(names) == 1 else None


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, Any] | None:
    """The verified peer certificate of a TLS connection, or None (plain, or none sent)."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    return dict(cert) if cert else None
