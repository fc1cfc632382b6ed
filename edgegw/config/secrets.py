"""Secrets in the configuration: inline, from a file, or from a systemd credential, resolved
when the file is loaded and never printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationInfo

from edgegw.config.base import _Model


class SecretFile(_Model):
    file: Path = Field(description="Read the secret from this file (trailing newline removed).")


class SecretCredential(_Model):
    credential: str = Field(
        min_length=1, description="Name of a systemd credential in $CREDENTIALS_DIRECTORY."
    )


SecretSource = str | SecretFile | SecretCredential


def _resolve_secret(value: SecretSource, info: ValidationInfo) -> SecretStr:
    if isinstance(value, str):
        return SecretStr(value)
    if isinstance(value, SecretFile):
        path = value.file
    else:
        directory = _credentials_directory(info)
        if not directory:
            raise ValueError(
                f"credential {value.credential!r} requested but $CREDENTIALS_DIRECTORY is not "
                "set (use LoadCredential= in the systemd unit, or { file = ... })"
            )
        path = Path(directory) / value.credential
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read secret from {path}: {exc.strerror}") from exc
    secret = text.rstrip("\r\n")
    if not secret:
        raise ValueError(f"secret file {path} is empty")
    return SecretStr(secret)


def _credentials_directory(info: ValidationInfo) -> str | None:
    ctx: Mapping[str, Any] = info.context or {}
    directory = ctx.get("credentials_directory") or os.environ.get("CREDENTIALS_DIRECTORY")
    return str(directory) if directory else None


def _secret_path(value: Any, info: ValidationInfo) -> Path | None:
    """A private-key path: a plain path, ``{ file = ... }`` or ``{ credential = ... }``.

    A systemd credential resolves to ``$CREDENTIALS_DIRECTORY/<name>`` (the key file itself is
    read by the TLS library, never by us).
    """
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) == {"file"}:
            path = SecretFile.model_validate(value).file
        elif set(value) == {"credential"}:
            name = SecretCredential.model_validate(value).credential
            directory = _credentials_directory(info)
            if not directory:
                raise ValueError(
                    f"credential {name!r} requested but $CREDENTIALS_DIRECTORY is not set "
                    "(use LoadCredential= in the systemd unit, or a path)"
                )
            path = Path(directory) / name
        else:
            raise ValueError('must be a path, { file = "..." } or { credential = "..." }')
    elif isinstance(value, str | Path):
        path = Path(value)
    else:
        raise ValueError('must be a path, { file = "..." } or { credential = "..." }')
    return _existing(path)


def _existing(path: Path | None) -> Path | None:
    if path is not None and not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    return path
