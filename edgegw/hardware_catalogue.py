"""The device files this gateway knows: meter profiles and charger models, shipped and the site's.

Two layers, one lookup:

- **shipped**: the top-level ``hardware/`` folder of the source tree, installed as the package
  ``edgegw.hardware`` (``pyproject.toml`` maps it). It is read with :mod:`importlib.resources`,
  so an editable install and an installed wheel read the same files the same way;
- **the site's own folder** (default ``/etc/edgegw/hardware``, ``[daemon] hardware_dir``):
  ``meters/<id>.toml`` and ``chargers/<id>.toml`` there add devices, or replace the shipped
  file of the same name. ``edgegw chargers probe --write-profile`` writes there.

The daemon, ``edgegw config check`` and every command that names a device ask one
:class:`HardwareCatalogue` built from the configuration (:meth:`HardwareCatalogue.for_config`).
Reading is all it does; nothing is cached, so an edited file counts at the next lookup.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final, Literal

from edgegw.config import Config
from edgegw.energy.chargermodels import (
    DEFAULT_MODEL_ID,
    ChargerModel,
    ChargerModelError,
    load_model,
)
from edgegw.energy.registers import MeterProfile, ProfileError, load_profile

__all__ = [
    "DEFAULT_SITE_DIR",
    "DeviceFile",
    "HardwareCatalogue",
    "HardwareError",
    "Kind",
    "TemplateProfileError",
    "shipped_files",
]

DEFAULT_SITE_DIR: Final = Path("/etc/edgegw/hardware")
"""The site's own device files (``[daemon] hardware_dir``)."""

SHIPPED_PACKAGE: Final = "edgegw.hardware"

Kind = Literal["meters", "chargers"]
KINDS: Final[tuple[Kind, ...]] = ("meters", "chargers")


class HardwareError(ValueError):
    """A device file is unknown, unreadable or malformed; each problem is one line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class TemplateProfileError(HardwareError):
    """A meter the site really reads names a template profile (``template = true``)."""


def shipped_files() -> Traversable:
    """The root of the shipped device files (``meters/``, ``chargers/``, ``README.md``)."""
    return files(SHIPPED_PACKAGE)


@dataclass(frozen=True, slots=True)
class DeviceFile:
    """One device file and where it comes from."""

    id: str
    file: Traversable
    site: bool
    """From the site's folder (True) or shipped with edgegw (False)."""

    def __str__(self) -> str:
        return str(self.file)


@dataclass(frozen=True, slots=True)
class _Layer:
    folder: Traversable
    site: bool


class HardwareCatalogue:
    """The device files of one site: the shipped ones, extended or overridden by the site's.

    ``site_dir`` holds ``meters/`` and ``chargers/``; a missing folder simply adds nothing.
    """

    def __init__(
        self,
        site_dir: Path | None = DEFAULT_SITE_DIR,
        *,
        shipped: Traversable | None = None,
    ) -> None:
        root = shipped if shipped is not None else shipped_files()
        self.site_dir = site_dir
        self._layers: dict[Kind, list[_Layer]] = {
            kind: [_Layer(root / kind, site=False)] for kind in KINDS
        }
        if site_dir is not None:
            for kind in KINDS:
                self._layers[kind].append(_Layer(site_dir / kind, site=True))

    @classmethod
    def for_config(cls, config: Config) -> HardwareCatalogue:
        """The catalogue a configured site uses (its ``[daemon] hardware_dir``)."""
        return cls(config.daemon.hardware_dir)

    @classmethod
    def for_config_file(cls, path: Path) -> HardwareCatalogue:
        """The catalogue of the site whose configuration is ``path``, read leniently: commands
        that only list devices work without a (valid) configuration, on the default folder."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return cls()
        daemon = data.get("daemon")
        folder = daemon.get("hardware_dir") if isinstance(daemon, dict) else None
        return cls(Path(folder)) if isinstance(folder, str) and folder else cls()

    @classmethod
    def of_folder(cls, kind: Kind, folder: Path) -> HardwareCatalogue:
        """Only the files of one folder, for tools given ``--dir``: nothing shipped is added."""
        catalogue = cls(None)
        catalogue._layers[kind] = [_Layer(folder, site=True)]
        return catalogue

    # ------------------------------------------------------------------ files

    def site_folder(self, kind: Kind) -> Path | None:
        """Where the site's own files of ``kind`` go (None: this catalogue has no site folder)."""
        return None if self.site_dir is None else self.site_dir / kind

    def describe(self, kind: Kind) -> str:
        """Where files of ``kind`` come from, for messages."""
        names = [
            str(layer.folder) if layer.site else f"the shipped {kind}"
            for layer in self._layers[kind]
        ]
        return " and ".join(names)

    def files(self, kind: Kind) -> dict[str, DeviceFile]:
        """Every ``*.toml`` of ``kind`` by id (the file name); a site file beats a shipped one."""
        found: dict[str, DeviceFile] = {}
        for layer in self._layers[kind]:
            for entry in _toml_files(layer.folder):
                name = entry.name.removesuffix(".toml")
                found[name] = DeviceFile(name, entry, layer.site)
        return dict(sorted(found.items()))

    def file(self, kind: Kind, device_id: str) -> DeviceFile | None:
        """The file for ``device_id``: the site's if it has one, else the shipped one."""
        for layer in reversed(self._layers[kind]):
            entry = layer.folder / f"{device_id}.toml"
            if _is_file(entry):
                return DeviceFile(device_id, entry, layer.site)
        return None

    # ------------------------------------------------------------------ meters

    def meter_profile(self, profile_id: str, *, allow_template: bool = True) -> MeterProfile:
        """The meter profile ``profile_id``; an unknown or broken one names what exists.

        ``allow_template=False`` is for a meter the site really reads: a ``template = true``
        file (``generic.toml``) holds example registers, and reading a real meter through
        them would give load capping invented currents.
        """
        found = self.file("meters", profile_id)
        if found is None:
            known = ", ".join(self.files("meters")) or "none"
            raise HardwareError(
                [
                    f"no meter profile {profile_id!r} in {self.describe('meters')} "
                    f"(available: {known})"
                ]
            )
        try:
            profile = load_profile(found.file)
        except ProfileError as exc:
            raise HardwareError(
                [f"meter profile {profile_id!r} is invalid:", *exc.problems]
            ) from None
        except OSError as exc:
            raise HardwareError([f"{found}: cannot read: {exc.strerror}"]) from None
        if profile.template and not allow_template:
            raise TemplateProfileError([self._template_message(profile_id, found)])
        return profile

    def _template_message(self, profile_id: str, found: DeviceFile) -> str:
        folder = self.site_folder("meters")
        copy = f"{folder}/<vendor>-<model>.toml" if folder else "<vendor>-<model>.toml"
        return (
            f"meter profile {profile_id!r} ({found}) is a template (template = true), not a "
            f"meter: its registers are examples. Copy it to {copy}, set id to the new file "
            "name, fill in name, products, [modbus], [serial] and/or [tcp] and every "
            "[registers] line from your meter's Modbus register list, delete the line "
            "`template = true`, and use the new id as this meter's profile "
            "(hardware/README.md explains each key)"
        )

    def meter_profiles(self) -> tuple[dict[str, MeterProfile], dict[str, list[str]]]:
        """Every meter profile that loads, by id, and the problems of each broken file."""
        loaded: dict[str, MeterProfile] = {}
        broken: dict[str, list[str]] = {}
        for name, found in self.files("meters").items():
            try:
                loaded[name] = load_profile(found.file)
            except ProfileError as exc:
                broken[str(found)] = exc.problems
            except OSError as exc:
                broken[str(found)] = [f"cannot read: {exc.strerror}"]
        return loaded, broken

    # ------------------------------------------------------------------ chargers

    def charger_models(self) -> dict[str, ChargerModel]:
        """Every charger model by id; all broken files are reported together.

        The default model (``generic-ocpp16``) must be among them: a charger without a
        ``model`` in the site configuration uses it.
        """
        models: dict[str, ChargerModel] = {}
        problems: list[str] = []
        for name, found in self.files("chargers").items():
            try:
                models[name] = _load_model(found)
            except HardwareError as exc:
                problems.extend(exc.problems)
        if DEFAULT_MODEL_ID not in models and not problems:
            problems.append(
                f"{self.describe('chargers')}: the default model {DEFAULT_MODEL_ID}.toml is missing"
            )
        if problems:
            raise HardwareError(problems)
        return models

    def charger_model(self, model_id: str) -> ChargerModel:
        """The charger model ``model_id``; an unknown one names the models there are."""
        found = self.file("chargers", model_id)
        if found is None:
            known = ", ".join(self.files("chargers")) or "none"
            raise HardwareError(
                [
                    f"no charger model {model_id!r} in {self.describe('chargers')} "
                    f"(known models: {known})"
                ]
            )
        return _load_model(found)

    def check_config(self, config: Config) -> list[str]:
        """Problems with the device files ``config`` names (meter profiles, charger models),
        each starting with its configuration key."""
        problems: list[str] = []
        for i, meter in enumerate(config.meters):
            try:
                self.meter_profile(meter.profile, allow_template=False)
            except HardwareError as exc:
                problems.extend(f"meters[{i}].profile: {p}" for p in exc.problems)
        for i, charger in enumerate(config.chargers):
            if charger.model is not None:
                try:
                    self.charger_model(charger.model)
                except HardwareError as exc:
                    problems.extend(f"chargers[{i}].model: {p}" for p in exc.problems)
        return problems


def _load_model(found: DeviceFile) -> ChargerModel:
    try:
        return load_model(found.file)
    except ChargerModelError as exc:
        raise HardwareError(exc.problems) from None


def _toml_files(folder: Traversable) -> list[Traversable]:
    try:
        if not folder.is_dir():
            return []
        return sorted(
            (e for e in folder.iterdir() if e.name.endswith(".toml") and e.is_file()),
            key=lambda e: e.name,
        )
    except OSError as exc:
        raise HardwareError(
            [
                f"{folder}: cannot read the device files there: {exc.strerror} (the daemon's "
                "user must be able to; run commands as root or a member of group edgegw)"
            ]
        ) from None


def _is_file(entry: Traversable) -> bool:
    try:
        return entry.is_file()
    except OSError as exc:
        raise HardwareError([f"{entry}: cannot read: {exc.strerror}"]) from None
