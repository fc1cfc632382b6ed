"""The ``[mqtt]`` section of the configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MqttConfig(BaseModel):
    """Where and how the gateway publishes its telemetry. Omit the section to disable MQTT."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535)
