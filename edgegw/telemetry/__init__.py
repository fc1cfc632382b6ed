"""MQTT telemetry and building integration (Home Assistant discovery included)."""
