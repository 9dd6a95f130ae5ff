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
def _discover() -> tuple[dict[str, type[Connector]], dict[str, str]]:
    found: dict[str, type[Connector]] = {}
    broken: dict[str, str] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
        except Exception as exc:  # a broken plugin must not take the others down
            broken[entry.name] = f"{entry.value} failed to load: {type(exc).__name__}: {exc}"
            continue
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            broken[entry.name] = f"{entry.value} is not a Connector class"
            continue
        found[entry.name] = cls
    return dict(sorted(found.items())), broken


def available() -> dict[str, type[Connector]]:
    """Every installed connector class that loads, by kind, sorted by kind."""
    return _discover()[0]


def broken() -> dict[str, str]:
    """Installed connector kinds that failed to load, with the reason."""
    return _discover()[1]


def connector_class(kind: str) -> type[Connector]:
    """The connector class for `kind`; raises `UnknownConnectorKind` naming the known ones."""
    classes, failed = _discover()
    if kind in classes:
        return classes[kind]
    if kind in failed:
        raise UnknownConnectorKind(f"connector kind {kind!r} is installed but {failed[kind]}")
    known = ", ".join(classes) or "none installed"
    raise UnknownConnectorKind(f"unknown connector kind {kind!r} (known: {known})")
