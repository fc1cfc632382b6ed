"""Every problem of a configuration file at once, for ``edgegw config check``.

pydantic checks a model's own rules (a section's model validators, the whole file's
cross-checks) only once its fields are valid, and ``config check`` looks at what the file
refers to (device files, certificates, serial adapters) only once the file is valid. Fixing a
file would then take rounds: six problems, then four more, then two more. Here the keys that
failed are taken out and the rest is validated again, until nothing new turns up; what is
left is a partial configuration whose references are checked too. Problems keep the key paths
and list positions of the file as written.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from edgegw.config import Config, _format_location

MAX_ROUNDS: Final = 8
_LISTS: Final = ("chargers", "meters")
_INDEXED = re.compile(r"\b(chargers|meters)\[(\d+)\]")


class _Work:
    """The file's data with the failing keys taken out, and where each list item came from."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = copy.deepcopy(data)
        self.origin: dict[str, list[int]] = {
            name: list(range(len(self.data[name])))
            for name in _LISTS
            if isinstance(self.data.get(name), list)
        }
        self.removed: set[str] = set()

    def original(self, text: str) -> str:
        """``text`` with list positions of the partial data turned back into the file's."""

        def back(match: re.Match[str]) -> str:
            name, index = match.group(1), int(match.group(2))
            positions = self.origin.get(name, [])
            return f"{name}[{positions[index] if index < len(positions) else index}]"

        return _INDEXED.sub(back, text)

    def remove(self, locs: list[tuple[str | int, ...]]) -> bool:
        """Take out the value at each location (the deepest key that exists); False when
        nothing could be taken out."""
        paths = {p for p in (self._path(loc) for loc in locs) if p}
        # Deepest and highest list positions first, so earlier removals do not shift later ones.
        for path in sorted(
            paths, key=lambda p: (len(p), [str(x).zfill(6) for x in p]), reverse=True
        ):
            parent: Any = self.data
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            if isinstance(parent, list) and isinstance(last, int) and last < len(parent):
                del parent[last]
                if len(path) == 2 and path[0] in self.origin:
                    del self.origin[str(path[0])][last]
            elif isinstance(parent, dict) and last in parent:
                del parent[last]
            self.removed.add(self.original(_format_location(path)))
        return bool(paths)

    def _path(self, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
        node: Any = self.data
        path: list[str | int] = []
        for part in loc:
            # Other parts are pydantic's branch names, or keys that are missing.
            if _has(node, part):
                node = node[part]
                path.append(part)
        return tuple(path)


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _lines(item: Any) -> list[str]:
    """One pydantic error as the problem lines ``parse_config`` would give."""
    where = _format_location(tuple(item["loc"]))
    message = str(item["msg"]).removeprefix("Value error, ")
    if where == "(top level)":
        return message.split("\n")
    if item["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see the configuration reference)"
    elif item["type"] == "missing":
        message = "required key is missing"
    return [f"{where}: {message}"]


def every_problem(
    data: dict[str, Any], *, credentials_directory: str | None = None
) -> tuple[list[str], Config | None, Callable[[str], str]]:
    """The problems of ``data`` (a parsed file) that validation finds round after round; the
    configuration of what is valid (None when nothing usable is left); and the function that
    turns that configuration's list positions (``chargers[2]``) back into the file's."""
    context = {"credentials_directory": credentials_directory}
    work = _Work(data)
    problems: list[str] = []
    for _ in range(MAX_ROUNDS):
        try:
            return problems, Config.model_validate(work.data, context=context), work.original
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        removable: list[tuple[str | int, ...]] = []
        for item in errors:
            loc = tuple(item["loc"])
            for said in _lines(item):
                line = work.original(said)
                key = line.split(":", 1)[0]
                taken_out = item["type"] == "missing" and any(
                    key == r or key.startswith((r + ".", r + "[")) for r in work.removed
                )
                if not taken_out and line not in problems:
                    problems.append(line)
            if loc:
                removable.append(loc)
        if not removable or not work.remove(removable):
            break  # only whole-file checks fail: their problems are all listed
    return problems, _partial(work.data, context), work.original


def _partial(data: dict[str, Any], context: dict[str, Any]) -> Config | None:
    """A configuration of the sections that are valid on their own (no whole-file checks)."""
    fields: dict[str, Any] = {}
    for name, field in Config.model_fields.items():
        if name not in data or field.annotation is None:
            continue
        try:
            fields[name] = TypeAdapter(field.annotation).validate_python(
                data[name], context=context
            )
        except ValidationError:
            continue
    try:
        return Config.model_construct(**fields)
    except (TypeError, ValueError):
        return None


def merge(problems: list[str], more: list[str], remap: Callable[[str], str] = str) -> None:
    """Add to ``problems`` each of ``more`` that is not there yet."""
    for said in more:
        problem = remap(said)
        if problem not in problems:
            problems.append(problem)
