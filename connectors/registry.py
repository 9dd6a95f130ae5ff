"""Finds connector classes: the built-ins and any installed plugin.

Connectors are discovered through the `fragment_sync.connectors` entry-point
group, so a separate package adds one by declaring, in its pyproject.toml::

    [project.entry-points."fragment_sync.connectors"]
    mysource = "my_package.module:MySourceConnector"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from connectors.base import Connector

ENTRY_POINT_GROUP = "fragment_sync.connectors"


class UnknownConnectorKind(LookupError):
    """No installed connector has this kind."""


@cache
def _entries() -> dict[str, EntryPoint]:
    """The declared connectors by kind; nothing imported yet."""
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


@cache
def _load(kind: str) -> type[Connector] | str:
    """The connector class of `kind`, or why it failed to load.

    One kind at a time: importing every connector (and what each imports)
    cost a `run --once` a tenth of a second before it did anything.
    """
    entry = _entries()[kind]
    try:
        cls = entry.load()
    except Exception as exc:  # a broken plugin must not take the others down
        return f"{entry.value} failed to load: {type(exc).__name__}: {exc}"
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        return f"{entry.value} is not a Connector class"
    return cls


def available() -> dict[str, type[Connector]]:
    """Every installed connector class that loads, by kind, sorted by kind."""
    return {kind: cls for kind, cls in _all().items() if not isinstance(cls, str)}


def broken() -> dict[str, str]:
    """Installed connector kinds that failed to load, with the reason."""
    return {kind: reason for kind, reason in _all().items() if isinstance(reason, str)}


def _all() -> dict[str, type[Connector] | str]:
    return {kind: _load(kind) for kind in sorted(_entries())}


def connector_class(kind: str) -> type[Connector]:
    """The connector class for `kind`; raises `UnknownConnectorKind` naming the known ones."""
    if kind not in _entries():
        known = ", ".join(sorted(_entries())) or "none installed"
        raise UnknownConnectorKind(f"unknown connector kind {kind!r} (known: {known})")
    loaded = _load(kind)
    if isinstance(loaded, str):
        raise UnknownConnectorKind(f"connector kind {kind!r} is installed but {loaded}")
    return loaded
