"""A charger's local list as the pusher keeps it (:mod:`edgegw.auth.listpush`): upper-cased
idTag -> (idTag as written, ``idTagInfo``), and the pure steps on it: the Differential between
two lists, applying one, cutting messages, the digest kept across restarts, and the values of a
1.6 charger's configuration keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

JsonDict = dict[str, Any]

Rendered = dict[str, tuple[str, JsonDict]]
"""A charger's list as the gateway wants it or believes it is."""

_SHOWN: Final = 5  # ids named in a log line about entries left out


def diff_lists(pushed: Rendered, desired: Rendered) -> list[JsonDict]:
    """Differential entries turning ``pushed`` into ``desired``: deletions, then upserts."""
    out: list[JsonDict] = [{"idTag": tag} for key, (tag, _) in pushed.items() if key not in desired]
    out.extend(
        {"idTag": tag, "idTagInfo": info}
        for key, (tag, info) in desired.items()
        if pushed.get(key) != (tag, info)
    )
    return out


def apply_entries(rendered: Rendered, entries: list[JsonDict]) -> None:
    for entry in entries:
        tag = entry["idTag"]
        if "idTagInfo" in entry:
            rendered[tag.upper()] = (tag, entry["idTagInfo"])
        else:
            rendered.pop(tag.upper(), None)


def cut(items: list[JsonDict], size: int | None) -> list[list[JsonDict]]:
    if not items:
        return []
    if size is None or size <= 0:
        return [items]
    return [items[i : i + size] for i in range(0, len(items), size)]


def digest(rendered: Rendered) -> str:
    text = json.dumps(sorted(rendered.items()), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def some(items: list[str]) -> str:
    """The first few of ``items``, and how many more."""
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def key_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    return None


def key_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(int(value.strip()), 0)
    except ValueError:
        return None
