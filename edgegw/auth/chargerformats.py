"""Which idTag format each configured charger uses: its own setting, else its model's."""

from __future__ import annotations

from collections.abc import Mapping

from edgegw.auth.idtags import IdTagFormat
from edgegw.config import Config
from edgegw.energy.chargermodels import ChargerModel, model_for
from edgegw.hardware_catalogue import HardwareCatalogue


def charger_models(config: Config | None = None) -> dict[str, ChargerModel]:
    """The charger models of the site's hardware catalogue (shipped + its hardware_dir)."""
    catalogue = HardwareCatalogue() if config is None else HardwareCatalogue.for_config(config)
    return catalogue.charger_models()


def configured_formats(
    config: Config, models: Mapping[str, ChargerModel] | None = None
) -> dict[str, IdTagFormat]:
    """Chargers whose format is known from the configuration (``auto`` ones are left out:
    the authorizer detects those from the cards they report)."""
    formats: dict[str, IdTagFormat] = {}
    for charger in config.chargers:
        if charger.idtag_format:
            fmt = IdTagFormat(charger.idtag_format)
        elif charger.model is not None:
            if models is None:
                models = charger_models(config)
            fmt = model_for(models, charger).idtag_format
        else:
            continue
        if fmt is not IdTagFormat.AUTO:
            formats[charger.id] = fmt
    return formats
