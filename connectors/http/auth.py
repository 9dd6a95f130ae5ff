"""The ways ticket systems take credentials, as httpx auth objects.

Secrets arrive as `SecretStr` and are revealed only here, into headers; the
log redaction (`sync.logs`) knows every one of them.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx
from pydantic import SecretStr


class HeaderAuth(httpx.Auth):
    """A credential in a header of its own: `X-Redmine-API-Key`, `Authorization: <key>`."""

    def __init__(self, header: str, value: SecretStr, prefix: str = "") -> None:
        self.header = header
        self._value = value
        self.prefix = prefix

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.header] = f"{self.prefix}{self._value.get_secret_value()}"
        yield request


def bearer(token: SecretStr) -> httpx.Auth:
    """`Authorization: Bearer <token>` (GitHub, OAuth everywhere)."""
    return HeaderAuth("Authorization", token, prefix="Bearer ")


def basic(username: str, password: SecretStr) -> httpx.Auth:
    """HTTP Basic (ServiceNow, Jira's email + API token)."""
    return httpx.BasicAuth(username, password.get_secret_value())


def api_key_header(header: str, key: SecretStr) -> httpx.Auth:
    """The key alone in a named header (Redmine's `X-Redmine-API-Key`)."""
    return HeaderAuth(header, key)


def zendesk_token(email: str, token: SecretStr) -> httpx.Auth:
    """Zendesk's API token: Basic with `{email}/token` as the user name."""
    return httpx.BasicAuth(f"{email}/token", token.get_secret_value())


def api_key_as_user(key: SecretStr) -> httpx.Auth:
    """The key as the Basic user name, "X" as the password (Freshdesk's documented form)."""
    return httpx.BasicAuth(key.get_secret_value(), "X")
