"""Reading a charger's configuration values, OCPP 1.6 keys and 2.0.1 variables alike: both
carry lists as comma-separated text (1.6 ``CSL``, 2.0.1 ``MemberList``/``SequenceList``) and
numbers as decimal text."""

from __future__ import annotations


def comma_list(value: str | None) -> list[str]:
    """A comma-separated key value (``"Core,SmartCharging"``) as its items, blanks dropped."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def int_value(value: str | None) -> int | None:
    """A key's value as a whole number; None when absent or not one (``"60s"``, ``"-1"``)."""
    text = (value or "").strip()
    return int(text) if text.isdigit() else None
