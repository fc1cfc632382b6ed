"""How ``--help`` shows on/off options, for the full ``edgegw`` app and ``edgegw run`` alone."""

from __future__ import annotations

from typing import Any


def plain_flags(command: Any, name: str) -> None:
    """On/off options show no ``<bool>`` type in ``--help`` (nor ``--help`` itself)."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False):
            param.metavar = ""
    context = command.context_class(command, info_name=name)
    help_option = command.get_help_option(context)
    if help_option is not None:
        help_option.metavar = ""
    for sub_name, sub in getattr(command, "commands", {}).items():
        plain_flags(sub, sub_name)
