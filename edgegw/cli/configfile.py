"""Editing the installer's configuration file without losing a comment.

The configuration is the installer's document: it carries comments ("bay 12, fed from
sub-panel B"), an order and a layout that must survive ``edgegw chargers add``. So the file is
edited with ``tomlkit`` (which keeps comments and formatting) instead of being re-serialised,
and every edit is checked three ways before anything is written:

1. the edited document is validated with :func:`~edgegw.config.parse_config`; an edit that adds
   a problem is refused (problems the file already had are reported, not blamed on the edit:
   e.g. a ``{ credential = ... }`` secret that only resolves under systemd);
2. the edited text, read back with ``tomllib``, must equal the intended data exactly;
3. the file must not have changed on disk since it was read (another edit in between).

The write is atomic: a temporary file in the same directory, with the original's mode and
owner, flushed to disk, then renamed over the original (and the directory synced), so a power
cut leaves the old file or the new one, never half of each.

tomlkit keeps the comments *before* a ``[[chargers]]`` header inside the previous table, so
adding a key or a charger would land below them. :class:`ConfigFile` moves such trailing
comment blocks along, so they stay above the header they describe.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, Comment, InlineTable, Item, Key, Table, Whitespace

from edgegw.config import Config, ConfigError, parse_config

_NEW_FILE_MODE = 0o640
_CHARGER_INDEX = re.compile(r"^chargers\[(\d+)\]")

Trivia = list[tuple[Key | None, Item]]


class ConfigFileError(Exception):
    """The file cannot be read, edited or written; the message says why and what to do."""


class EditRefused(ConfigFileError):
    """The edit would make the configuration invalid; ``problems`` lists what it adds."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class ConfigFile:
    """A configuration file loaded for editing; :meth:`load`, edit, :meth:`save`."""

    def __init__(self, path: Path, text: str, document: tomlkit.TOMLDocument) -> None:
        """Use :meth:`load`."""
        self.path = path
        self._original = text
        self._document = document
        self._expected: dict[str, Any] = document.unwrap()
        self.previous_problems = self._problems(self._expected, list(self._charger_ids()))

    @classmethod
    def load(cls, path: Path) -> ConfigFile:
        """Read ``path``; :class:`ConfigFileError` if it is missing, unreadable or not TOML."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigFileError(
                f"no configuration file at {path}; create one with `edgegw init`, or give the "
                "right one with --config"
            ) from None
        except UnicodeDecodeError:
            raise ConfigFileError(f"{path} is not UTF-8 text") from None
        except OSError as exc:
            raise ConfigFileError(
                f"cannot read {path}: {exc.strerror}; run as root or the edgegw user"
            ) from None
        try:
            document = tomlkit.parse(text)
        except TOMLKitError as exc:
            raise ConfigFileError(
                f"{path} is not valid TOML ({exc}); fix it by hand first, "
                f"`edgegw config check {path}` shows the problems"
            ) from None
        return cls(path, text, document)

    # ------------------------------------------------------------------ reading

    def _charger_ids(self) -> list[str]:
        chargers = self._expected.get("chargers")
        if not isinstance(chargers, list):
            return []
        return [str(c.get("id", "")) if isinstance(c, Mapping) else "" for c in chargers]

    def data(self) -> dict[str, Any]:
        """The document as plain data, with the edits made so far."""
        return copy.deepcopy(self._expected)

    def charger_ids(self) -> list[str]:
        return self._charger_ids()

    def charger(self, charger_id: str) -> dict[str, Any] | None:
        """The charger's section as plain data, or None."""
        index = self._index(charger_id)
        if index is None:
            return None
        return dict(self._expected["chargers"][index])

    def _index(self, charger_id: str) -> int | None:
        for index, known in enumerate(self._charger_ids()):
            if known == charger_id:
                return index
        return None

    # ------------------------------------------------------------------ editing

    def add_charger(self, fields: Mapping[str, Any]) -> None:
        """Append a ``[[chargers]]`` section with ``fields`` (which include ``id``)."""
        charger_id = str(fields["id"])
        if self._index(charger_id) is not None:
            raise ConfigFileError(f"{charger_id} is already configured in {self.path}")
        doc = self._document
        existing = doc.get("chargers")
        if isinstance(existing, AoT):
            table = tomlkit.table()
            for key, value in fields.items():
                table.add(key, value)
            if existing.body:
                last = existing.body[-1]
                trailing = _pop_trailing(last)
                last.value.body.append((None, Whitespace("\n")))
                existing.append(table)
                table.value.body.extend(trailing)
            else:
                existing.append(table)
        elif isinstance(existing, Array):
            inline = tomlkit.inline_table()
            inline.update(fields)
            existing.append(inline)
        elif existing is None:
            aot = tomlkit.aot()
            table = tomlkit.table()
            for key, value in fields.items():
                table.add(key, value)
            aot.append(table)
            if doc.body and not doc.as_string().endswith("\n\n"):
                doc.add(tomlkit.nl())
            doc.append("chargers", aot)
        else:
            raise ConfigFileError(
                f"'chargers' in {self.path} is not a list of [[chargers]] sections; fix it by hand"
            )
        self._expected.setdefault("chargers", []).append(copy.deepcopy(dict(fields)))

    def remove_charger(self, charger_id: str) -> dict[str, Any]:
        """Remove the charger's section; returns what it held.

        Comments inside the section go with it; comment blocks around it stay.
        """
        index = self._require(charger_id)
        chargers = self._document["chargers"]
        if isinstance(chargers, AoT):
            tables = chargers.body
            removed = tables[index]
            trailing = _pop_trailing(removed)
            del chargers[index]
            if index > 0:
                tables[index - 1].value.body.extend(trailing)
            elif tables:
                _park_before(self._document, "chargers", trailing)
            else:
                _park_before(self._document, "chargers", trailing)
                del self._document["chargers"]
        elif isinstance(chargers, Array):
            del chargers[index]
        else:  # _require found it, so it is one of the two
            raise ConfigFileError(f"cannot edit 'chargers' in {self.path}; fix it by hand")
        removed_data = dict(self._expected["chargers"].pop(index))
        if not self._expected["chargers"] and "chargers" not in self._document:
            del self._expected["chargers"]
        return removed_data

    def set_charger_value(self, charger_id: str, key: str, value: Any) -> None:
        """Set one key of a charger's section (added at the end of it if new)."""
        index = self._require(charger_id)
        section = self._document["chargers"][index]
        if isinstance(section, Table):
            if key in section:
                section[key] = value
            else:
                trailing = _pop_trailing(section)
                section.add(key, value)
                section.value.body.extend(trailing)
        elif isinstance(section, InlineTable):
            section[key] = value
        else:
            raise ConfigFileError(f"chargers[{index}] in {self.path} is not a table")
        self._expected["chargers"][index][key] = copy.deepcopy(value)

    def unset_charger_value(self, charger_id: str, key: str) -> bool:
        """Remove one key of a charger's section (its default applies); False if it had none."""
        index = self._require(charger_id)
        section = self._document["chargers"][index]
        if not isinstance(section, Table | InlineTable):
            raise ConfigFileError(f"chargers[{index}] in {self.path} is not a table")
        if key not in section:
            return False
        del section[key]
        del self._expected["chargers"][index][key]
        return True

    def _require(self, charger_id: str) -> int:
        index = self._index(charger_id)
        if index is None:
            ids = ", ".join(self._charger_ids()) or "none"
            raise ConfigFileError(
                f"{charger_id} is not configured in {self.path} (configured: {ids})"
            )
        return index

    # ------------------------------------------------------------------ checking and saving

    def text(self) -> str:
        return self._document.as_string()

    def check(self) -> Config | None:
        """Validate the edited document; :class:`EditRefused` lists the problems it adds.

        Returns the configuration, or None when the file keeps problems it had before the edit
        (see :attr:`previous_problems`).
        """
        text = self.text()
        try:
            written = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigFileError(
                f"the edit produced invalid TOML ({exc}); nothing written"
            ) from None
        if written != self._expected:
            raise ConfigFileError(
                f"the edit of {self.path} did not give the intended result (an unusual layout?); "
                "nothing was written: edit the file by hand"
            )
        try:
            return parse_config(written, source=str(self.path), credentials_directory=_creds())
        except ConfigError as exc:
            named = _by_charger_id(exc.problems, self._charger_ids())
        old = set(self.previous_problems)
        added = [p for p in named if p not in old]
        if added:
            raise EditRefused(
                f"the change would make {self.path} invalid; nothing was written", added
            )
        return None

    def save(self) -> Config | None:
        """Check, then write atomically; returns what :meth:`check` returns."""
        config = self.check()
        write_atomic(self.path, self.text(), expected=self._original)
        self._original = self.text()
        return config

    @staticmethod
    def _problems(data: dict[str, Any], charger_ids: list[str]) -> list[str]:
        try:
            parse_config(data, credentials_directory=_creds())
        except ConfigError as exc:
            return _by_charger_id(exc.problems, charger_ids)
        return []


def write_atomic(path: Path, text: str, *, expected: str | None = None) -> None:
    """Replace ``path`` with ``text`` atomically, keeping its mode and owner.

    ``expected`` is the content the caller read; if the file changed since, nothing is
    written (:class:`ConfigFileError`). A new file gets mode 0640.
    """
    target = path.resolve()
    try:
        st: os.stat_result | None = target.stat()
    except FileNotFoundError:
        st = None
    mode = stat.S_IMODE(st.st_mode) if st is not None else _NEW_FILE_MODE
    try:
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigFileError(
            f"cannot write in {target.parent}: {exc.strerror}; run as root (sudo)"
        ) from None
    temp_path = Path(temp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), mode)
            if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(out.fileno(), st.st_uid, st.st_gid)
                except PermissionError:
                    raise ConfigFileError(
                        f"{target} belongs to another user; run as root (sudo) so that it keeps "
                        "its owner"
                    ) from None
            os.fsync(out.fileno())
        if expected is not None:
            try:
                current = target.read_text(encoding="utf-8")
            except OSError:
                current = None
            if current != expected:
                raise ConfigFileError(
                    f"{target} changed while it was being edited; nothing was written, run the "
                    "command again"
                )
        temp_path.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# ---------------------------------------------------------------------------- tomlkit surgery


def _pop_trailing(table: Table) -> Trivia:
    """Take the comments and blank lines at the end of ``table``'s body (they belong to what
    follows it) and return them in order."""
    body = table.value.body
    cut = len(body)
    while (
        cut > 0 and body[cut - 1][0] is None and isinstance(body[cut - 1][1], Comment | Whitespace)
    ):
        cut -= 1
    trailing = body[cut:]
    del body[cut:]
    return trailing


def _park_before(document: tomlkit.TOMLDocument, key: str, trivia: Trivia) -> None:
    """Keep ``trivia`` just before the document's item ``key``: at the end of the table (or
    array of tables) before it, else in the document's own body."""
    if not trivia:
        return
    body = document.body
    position = next(
        (i for i, (k, _) in enumerate(body) if k is not None and k.key == key), len(body)
    )
    previous = body[position - 1][1] if position > 0 else None
    if isinstance(previous, AoT) and previous.body:
        previous = previous.body[-1]
    if isinstance(previous, Table):
        previous.value.body.extend(trivia)
        return
    # Top-level items before the section: insert, shifting tomlkit's key index as its own
    # _insert_at does. The caller's read-back check catches any surprise.
    index: dict[Key, int | tuple[int, ...]] | None = getattr(document, "_map", None)
    if index is None:
        return  # an unknown tomlkit: lose these comments rather than break the file
    count = len(trivia)
    for k, v in index.items():
        if isinstance(v, tuple):
            index[k] = tuple(i + count if i >= position else i for i in v)
        elif v >= position:
            index[k] = v + count
    body[position:position] = trivia


def _by_charger_id(problems: list[str], charger_ids: list[str]) -> list[str]:
    """Problems with ``chargers[3]`` rewritten as ``chargers[CP4]``, so that removing one
    charger does not make the problems of the next ones look new."""

    def name(match: re.Match[str]) -> str:
        index = int(match.group(1))
        who = charger_ids[index] if index < len(charger_ids) else match.group(1)
        return f"chargers[{who}]"

    return [_CHARGER_INDEX.sub(name, p) for p in problems]


def _creds() -> str | None:
    return os.environ.get("CREDENTIALS_DIRECTORY")
