"""Telemetry for the building: MQTT publishing, Home Assistant discovery, MQTT commands."""
