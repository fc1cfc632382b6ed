"""The topic layout, in one place.

::

    <prefix>/availability                  online | offline (last will) | stopped   retained
    <prefix>/site/state                    site JSON                                retained
    <prefix>/charger/<id>/state            charger JSON                             retained
    <prefix>/circuit/<name>/state          circuit (board) JSON                     retained
    <prefix>/events                        one JSON event per message               not retained
    <prefix>/site/limit/set                command: temporary site limit
    <prefix>/charger/<id>/enabled/set      command: enable / disable a charger
    <prefix>/charger/<id>/stop/set         command: stop its session(s)
    <prefix>/.../<command>/result          the answer to every command             not retained
    <discovery>/<component>/<node>/<object>/config   Home Assistant discovery       retained

A charger id (or a circuit name) may hold characters MQTT gives a meaning to (``+`` is allowed
in OCPP identities); in a topic they are percent-encoded (``+`` → ``%2B``), ``%`` included.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import unquote

_ESCAPE = {"%": "%25", "/": "%2F", "+": "%2B", "#": "%23"}
_OBJECT_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def topic_segment(name: str) -> str:
    """``name`` as one topic level: no '/', '+', '#' left."""
    return "".join(_ESCAPE.get(c, c) for c in name)


def object_id(name: str) -> str:
    """``name`` reduced to what Home Assistant allows in a discovery node or object id.

    Topic levels (``/``) become ``_``. When other characters had to be replaced, a short hash
    of the original keeps two names that differ only there (``CP.1`` and ``CP_1``) apart.
    """
    levels = name.replace("/", "_")
    safe = _OBJECT_ID_UNSAFE.sub("_", levels)
    if safe == levels:
        return safe
    return f"{safe}_{hashlib.sha256(name.encode()).hexdigest()[:6]}"


@dataclass(frozen=True, slots=True)
class CommandRoute:
    """Where a command message went: the site or a charger, and the command's name."""

    name: str
    charger_id: str | None = None


class Topics:
    """Builds and parses this gateway's topics."""

    def __init__(self, prefix: str, discovery_prefix: str) -> None:
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.availability = f"{prefix}/availability"
        self.site_state = f"{prefix}/site/state"
        self.events = f"{prefix}/events"
        self.ha_status = f"{discovery_prefix}/status"
        self.node = object_id(prefix)
        """This gateway's node id in discovery topics and unique ids."""

    def charger_state(self, charger_id: str) -> str:
        return f"{self.prefix}/charger/{topic_segment(charger_id)}/state"

    def circuit_state(self, name: str) -> str:
        return f"{self.prefix}/circuit/{topic_segment(name)}/state"

    def site_command(self, name: str) -> str:
        return f"{self.prefix}/site/{name}/set"

    def charger_command(self, charger_id: str, name: str) -> str:
        return f"{self.prefix}/charger/{topic_segment(charger_id)}/{name}/set"

    def command_filters(self) -> list[str]:
        """Subscriptions that catch every command (and mistyped ones, to refuse them)."""
        return [f"{self.prefix}/site/+/set", f"{self.prefix}/charger/+/+/set"]

    def parse_command(self, topic: str) -> CommandRoute | None:
        """The route of a command topic, or None if it is not one of ours."""
        head = f"{self.prefix}/"
        if not topic.startswith(head) or not topic.endswith("/set"):
            return None
        parts = topic[len(head) : -len("/set")].split("/")
        if len(parts) == 2 and parts[0] == "site" and parts[1]:
            return CommandRoute(parts[1])
        if len(parts) == 3 and parts[0] == "charger" and parts[1] and parts[2]:
            return CommandRoute(parts[2], unquote(parts[1]))
        return None

    @staticmethod
    def result_for(command_topic: str) -> str:
        """``.../limit/set`` is answered on ``.../limit/result``."""
        return command_topic.removesuffix("/set") + "/result"

    def discovery(self, component: str, object_name: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node}/{object_id(object_name)}/config"
