"""The TLS context towards the ``[mqtt]`` broker, one builder for every MQTT client of the
gateway (the telemetry publisher, the subscriber of external limit signals), so that each
trusts the same CA and presents the same client certificate. Here, on the configuration's
side, because load capping may not import the telemetry package."""

from __future__ import annotations

import ssl

from edgegw.telemetry.settings import MqttSetupError, MqttTlsConfig

__all__ = ["MqttSetupError", "mqtt_tls_context"]


def mqtt_tls_context(tls: MqttTlsConfig | None) -> ssl.SSLContext | None:
    """``[mqtt.tls]``'s client context, None for plain TCP: the broker verified against
    ``ca_file`` (default: the system's CAs), its host name checked unless ``check_hostname``
    is false, the client certificate presented when one is set.

    Raises :class:`MqttSetupError` (a ``ValueError``) when the CA, certificate or key cannot
    be used, naming the section.
    """
    if tls is None:
        return None
    try:
        context = ssl.create_default_context(
            cafile=None if tls.ca_file is None else str(tls.ca_file)
        )
        context.check_hostname = tls.check_hostname
        if tls.cert_file is not None and tls.key_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise MqttSetupError(f"mqtt.tls: cannot use the CA, certificate or key: {exc}") from exc
    return context
