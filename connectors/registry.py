"""Finds connector classes: the built-ins and any installed plugin.

Connectors are discovered through the `fragment_sync.connectors` entry-point
group, so a separate package adds one by declaring, in its pyproject.toml::

    [project.entry-points."fragment_sync.connectors"]
    mysource = "my_package.module:MySourceConnector"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from connectors.base import Connector

ENTRY_POINT_GROUP = "fragment_sync.connectors"


class UnknownConnectorKind(LookupError):
    """No installed connector has this kind."""


@cache
def available() -> dict[str, type[Connector]]:
    """Every installed connector class by kind, sorted by kind.

    Raises `TypeError` when an entry point does not name a `Connector` subclass.
    """
    found: dict[str, type[Connector]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise TypeError(f"entry point {entry.name!r} ({entry.value}) is not a Connector class")
        found[entry.name] = cls
    return dict(sorted(found.items()))


def connector_class(kind: str) -> type[Connector]:
    """The connector class for `kind`; raises `UnknownConnectorKind` naming the known ones."""
    classes = available()
    try:
        return classes[kind]
    except KeyError:
        known = ", ".join(classes) or "none installed"
        raise UnknownConnectorKind(f"unknown connector kind {kind!r} (known: {known})") from None
