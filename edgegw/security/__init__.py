"""Transport security and abuse limits for the charger-facing server and the cloud link.

``tls`` builds the TLS contexts (OCPP Security Profiles 2 and 3), ``admission`` decides which
TCP connections may even start a handshake, ``throttle`` holds the failed-login back-off and
the per-connection message rate, ``guarded`` applies all of them to a WebSocket connection, and
``quiet_log`` keeps an attack from turning each refusal into a log line. ``certs`` reads the
gateway's certificate files and their expiry; ``certwatch`` warns before they expire.
"""
