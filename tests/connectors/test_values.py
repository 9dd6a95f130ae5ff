"""The config types of `connectors.values`: one check for each kind of setting, at load."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from connectors.values import HttpUrl, TimeZoneName
from sync.config import build_config
from sync.errors import ConfigError

URL = TypeAdapter(HttpUrl)
ZONE = TypeAdapter(TimeZoneName)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://fragment.example/api/v1", "https://fragment.example/api/v1"),
        ("https://fragment.example/api/v1/", "https://fragment.example/api/v1"),
        ("http://127.0.0.1:8400//", "http://127.0.0.1:8400"),
    ],
)
def test_an_http_url_is_kept_without_trailing_slashes(given: str, kept: str) -> None:
    assert URL.validate_python(given) == kept


@pytest.mark.parametrize("given", ["ftp://files.example/", "fragment.example/api", ""])
def test_a_url_that_is_not_http_is_refused(given: str) -> None:
    with pytest.raises(ValidationError, match=r"is not an http\(s\) URL"):
        URL.validate_python(given)


@pytest.mark.parametrize(
    ("fragment_url", "connector", "key"),
    [
        ("ftp://fragment.example", {"kind": "zendesk", "subdomain": "acme"}, "fragment.url"),
        (
            "https://fragment.example",
            {"kind": "rest", "base_url": "api.example/v2"},
            "connectors.source.base_url",
        ),
        # GitHub declares base_url again, with a default: the check must come along.
        (
            "https://fragment.example",
            {"kind": "github", "repository": "octo-org/helpdesk", "base_url": "ghe.example"},
            "connectors.source.base_url",
        ),
    ],
)
def test_every_url_setting_refuses_what_is_not_http_naming_its_key(
    fragment_url: str, connector: dict[str, Any], key: str
) -> None:
    raw = {
        "fragment": {"url": fragment_url, "token": "fragment-token"},
        "connectors": {"source": {**connector, "token": "source-token"}},
    }

    with pytest.raises(ConfigError, match=r"is not an http\(s\) URL") as raised:
        build_config(raw, source="test")

    assert raised.value.key == key


@pytest.mark.parametrize("name", ["UTC", "utc", "Europe/Paris", "America/Sao_Paulo"])
def test_a_known_time_zone_name_is_kept_as_written(name: str) -> None:
    assert ZONE.validate_python(name) == name


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", "Europe/../etc"])
def test_an_unknown_time_zone_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        ZONE.validate_python(name)
