"""One ``[[chargers]]`` entry: identity, credentials, model and its per-charger settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from edgegw.config.base import CHARGER_ID_PATTERN, _Model
from edgegw.config.network import SecurityProfile
from edgegw.config.secrets import (
    SecretCredential,
    SecretFile,
    SecretSource,
    _existing,
    _resolve_secret,
    _secret_path,
)


class ChargerConfig(_Model):
    """One charger known to the site."""

    id: str = Field(description="OCPP identity (the last URL path segment).")
    label: str = Field(default="", description="Human name shown to caretakers.")
    password_hash: str | None = Field(
        default=None,
        description="Hash of the charger's Basic-auth password ('edgegw password-hash').",
    )
    cloud_username: str | None = Field(
        default=None, description="Basic-auth user towards the cloud (default: the charger id)."
    )
    cloud_password: Annotated[SecretStr | None, Field(description="Cloud Basic-auth password.")] = (
        None
    )
    model: str | None = Field(
        default=None,
        description="Charger profile: a file name in hardware/chargers/ (no .toml).",
    )
    idtag_format: str | None = Field(
        default=None,
        description="How it reports card UIDs (default: from its model, else 'auto').",
    )
    free_charging_tag: str | None = Field(
        default=None,
        description="The idTag it sends when set to free charging; always accepted.",
    )
    min_current_a: float = Field(default=6.0, ge=6, le=80, description="Lowest current (A).")
    max_current_a: float = Field(default=16.0, ge=6, le=500, description="Highest current (A).")
    fallback_current_a: float = Field(
        default=0.0, ge=0, le=500, description="Its share while the meter is lost (A; 0 = pause)."
    )
    priority: Literal["normal", "vip"] = Field(default="normal", description="'vip' goes first.")
    phases: str = Field(
        default="L1L2L3",
        description="Site phases its L1, L2, L3 are wired to, in order, e.g. 'L2L3L1'; "
        "a single-phase charger names one phase, e.g. 'L2'.",
    )
    circuit: str | None = Field(
        default=None,
        description="Name of the [[circuits]] entry it hangs on; unset: directly on the site.",
    )
    security_profile: SecurityProfile | None = Field(
        default=None,
        description="Raise this charger above the site's server.security_profile (never lower).",
    )
    certificate_cn: str | None = Field(
        default=None,
        min_length=1,
        description="Subject CN of its client certificate when it is not the charger id "
        "(some vendors put the serial number there).",
    )
    cloud_tls_cert_file: Path | None = Field(
        default=None, description="Its own client certificate towards the cloud (profile 3)."
    )
    cloud_tls_key_file: Path | None = Field(
        default=None,
        description='Its private key: a path, { file = "..." } or { credential = "..." }.',
    )

    @field_validator("cloud_tls_key_file", mode="before")
    @classmethod
    def _cloud_key_file(cls, value: Any, info: ValidationInfo) -> Path | None:
        return _secret_path(value, info)

    @field_validator("cloud_tls_cert_file")
    @classmethod
    def _cloud_cert_file(cls, value: Path | None) -> Path | None:
        return _existing(value)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not CHARGER_ID_PATTERN.match(value):
            raise ValueError(
                "must be 1-48 characters of letters, digits and . _ - * + = | @ ~ "
                "(no ':' or '/', it is the URL path segment and the Basic-auth user name)"
            )
        return value

    @field_validator("idtag_format")
    @classmethod
    def _idtag_format(cls, value: str | None) -> str | None:
        from edgegw.auth.idtags import IdTagFormat  # noqa: PLC0415

        if value is not None and value not in {f.value for f in IdTagFormat}:
            allowed = ", ".join(f.value for f in IdTagFormat)
            raise ValueError(f"{value!r} is not an idTag format; use one of: {allowed}")
        return value

    @field_validator("phases")
    @classmethod
    def _phases(cls, value: str) -> str:
        names = [value[i : i + 2].upper() for i in range(0, len(value), 2)]
        if (
            len(value) % 2
            or not 1 <= len(names) <= 3
            or len(set(names)) != len(names)
            or any(n not in ("L1", "L2", "L3") for n in names)
        ):
            raise ValueError("must be 1 to 3 distinct site phases in order, e.g. 'L1L2L3', 'L2'")
        return "".join(names)

    @model_validator(mode="after")
    def _currents(self) -> ChargerConfig:
        if self.max_current_a < self.min_current_a:
            raise ValueError(
                f"max_current_a ({self.max_current_a}) is below min_current_a "
                f"({self.min_current_a})"
            )
        if self.fallback_current_a > self.max_current_a:
            raise ValueError("fallback_current_a cannot exceed max_current_a")
        if (self.cloud_tls_cert_file is None) != (self.cloud_tls_key_file is None):
            raise ValueError("cloud_tls_cert_file and cloud_tls_key_file go together")
        return self

    def site_phases(self) -> tuple[int, ...]:
        """Indexes (0 = L1) of the site phases its L1, L2, L3 are wired to."""
        return tuple(int(self.phases[i + 1]) - 1 for i in range(0, len(self.phases), 2))

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str | None) -> str | None:
        from edgegw.auth.passwords import check_hash_format  # noqa: PLC0415

        if value is not None:
            check_hash_format(value)
        return value

    @field_validator("cloud_password", mode="before")
    @classmethod
    def _cloud_password(cls, value: Any, info: ValidationInfo) -> SecretStr | None:
        if value is None or isinstance(value, SecretStr):
            return value
        if isinstance(value, dict):
            source: SecretSource
            if set(value) == {"file"}:
                source = SecretFile.model_validate(value)
            elif set(value) == {"credential"}:
                source = SecretCredential.model_validate(value)
            else:
                raise ValueError('must be a string, { file = "..." } or { credential = "..." }')
            return _resolve_secret(source, info)
        if isinstance(value, str):
            return SecretStr(value)
        raise ValueError('must be a string, { file = "..." } or { credential = "..." }')
