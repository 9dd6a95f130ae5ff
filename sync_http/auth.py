"""The ways ticket systems take credentials, as httpx auth objects.

Secrets arrive as `SecretStr` and are revealed only here, into headers or the
query; the redaction (`sync_http.redaction`) knows every one of them.

Tokens that expire (OAuth 2 access tokens, GitHub App installation tokens)
are a `RefreshingAuth`: obtained from the token endpoint on first use,
renewed shortly before they expire, and renewed once more when the source
refuses one mid-pass (401), the request then sent again. The token request
goes out inside the request's own auth flow, over the session's connection
and with its timeout, so the session's retry loop sees a token endpoint's
failure like any other answer: `TokenEndpointFailed` (5xx, 429) is retried,
`TokenRefused` fails the connector's run naming the endpoint and its reason.
Every token obtained is registered with the redaction before it is used.
A token endpoint must be https, or on the source's own origin
(`token_endpoint`): a client secret never goes anywhere else.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from sync_http import clock
from sync_http.redaction import excerpt, register_secrets

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

AuthFlow = Generator[httpx.Request, httpx.Response, None]
TokenFlow = Generator[httpx.Request, httpx.Response, "AccessToken"]
"""Yields the token request(s) and returns the token they got."""


class HeaderAuth(httpx.Auth):
    """A credential in a header of its own: `X-Redmine-API-Key`, `Authorization: <key>`."""

    def __init__(self, header: str, value: SecretStr, prefix: str = "") -> None:
        self.header = header
        self._value = value
        self.prefix = prefix

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.header] = f"{self.prefix}{self._value.get_secret_value()}"
        yield request


class QueryParamAuth(httpx.Auth):
    """The key as a query parameter (`?key=…`), set on every request, replacing any copy.

    A next-page link that already carries it (servers often echo every
    parameter) gets the configured value, not a second one.
    """

    def __init__(self, param: str, value: SecretStr) -> None:
        self.param = param
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_set_param(self.param, self._value.get_secret_value())
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


def api_key_query(param: str, key: SecretStr) -> httpx.Auth:
    """The key as a query parameter, for APIs that take it nowhere else."""
    return QueryParamAuth(param, key)


def zendesk_token(email: str, token: SecretStr) -> httpx.Auth:
    """Zendesk's API token: Basic with `{email}/token` as the user name."""
    return httpx.BasicAuth(f"{email}/token", token.get_secret_value())


def api_key_as_user(key: SecretStr) -> httpx.Auth:
    """The key as the Basic user name, "X" as the password (Freshdesk's documented form)."""
    return httpx.BasicAuth(key.get_secret_value(), "X")


# Tokens that expire


class TokenRefused(httpx.HTTPError):
    """The token endpoint gave no usable token; nothing works until the credentials are fixed."""


class TokenEndpointFailed(TokenRefused):
    """The token endpoint failed transiently (5xx, 429): worth another try."""


def token_endpoint(url: str, base_url: str) -> str:
    """The absolute URL of a token endpoint, when a client secret may be sent there.

    `url` is absolute, or a path appended to `base_url`. Allowed: any https
    URL, or one on `base_url`'s own origin (scheme, host and port). Raises
    `ValueError` otherwise, naming both origins.
    """
    resolved = f"{base_url.rstrip('/')}{url}" if url.startswith("/") else url
    target = httpx.URL(resolved)
    if target.scheme not in ("http", "https") or not target.host:
        raise ValueError(f"{url!r} is neither an http(s) URL nor a path under base_url")
    there, home = origin_of(target), origin_of(httpx.URL(base_url))
    if target.scheme != "https" and there != home:
        raise ValueError(
            f"{url!r} would send the client's secrets unencrypted to {there}, "
            f"which is not base_url's origin ({home}): use https"
        )
    return resolved


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: httpx.URL) -> str:
    """`scheme://host[:port]` of `url`, the port left out when it is the scheme's default.

    Two URLs share an origin, where credentials may go, when these are equal.
    """
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = url.port or _DEFAULT_PORTS.get(url.scheme)
    shown = "" if port == _DEFAULT_PORTS.get(url.scheme) else f":{port}"
    return f"{url.scheme}://{host}{shown}"


@dataclass(frozen=True)
class AccessToken:
    value: str
    renew_at: float | None
    """`time.monotonic()` after which it is renewed before use; None: only when refused."""

    @classmethod
    def lasting(cls, value: str, lifetime: float | None) -> AccessToken:
        """A token valid for `lifetime` seconds from now, renewed a little before that.

        The margin is a minute, or a fifth of a short lifetime: a request sent
        just before the deadline must still arrive in time.
        """
        if lifetime is None:
            return cls(value, None)
        return cls(value, time.monotonic() + lifetime - min(60.0, lifetime / 5))

    def due(self) -> bool:
        return self.renew_at is not None and time.monotonic() >= self.renew_at


class RefreshingAuth(httpx.Auth):
    """A bearer token from a token endpoint, renewed before it expires and once when refused.

    Subclasses implement `obtain`: the request(s) that get a token. A request
    refused with 401 is sent once more with a new token, unless the token was
    obtained for this very request (a fresh token refused means the
    credentials lack access, and asking again would not change that); the
    second answer, whatever it is, goes to the session's policy.
    """

    def __init__(self) -> None:
        self._token: AccessToken | None = None

    def obtain(self, request: httpx.Request) -> TokenFlow:
        """Yield the token request(s) and return the token; `request` is what it is for."""
        raise NotImplementedError

    def auth_flow(self, request: httpx.Request) -> AuthFlow:
        token, fresh = self._token, False
        if token is None or token.due():
            token, fresh = (yield from self._renew(request)), True
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if response.status_code == 401 and not fresh:
            token = yield from self._renew(request)
            request.headers["Authorization"] = f"Bearer {token.value}"
            yield request

    def _renew(self, request: httpx.Request) -> TokenFlow:
        self._token = None
        token = yield from self.obtain(request)
        self._token = token
        return token


def publish_secrets(*values: str | None) -> None:
    """Register secrets obtained at run time (tokens, app JWTs) with the redaction."""
    register_secrets(value for value in values if value)


def _token_request(
    url: str,
    for_request: httpx.Request,
    *,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Request:
    """A POST to a token endpoint, with the timeout and User-Agent of the request it serves."""
    sent_headers = {"Accept": "application/json", **(headers or {})}
    agent = for_request.headers.get("User-Agent")
    if agent:
        sent_headers["User-Agent"] = agent
    return httpx.Request(
        "POST", url, data=dict(form or {}), headers=sent_headers, extensions=for_request.extensions
    )


def _token_answer(response: httpx.Response, endpoint: str, asked: str) -> dict[str, Any]:
    """The JSON object a token endpoint answered. Raises `TokenRefused` (or its transient kind)."""
    body = response.read()
    status = response.status_code
    try:
        answer = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        answer = None
    if status >= 500 or status == 429:
        raise TokenEndpointFailed(f"the token endpoint {endpoint} answered {status} to {asked}")
    if not 200 <= status < 300:
        raise TokenRefused(
            f"the token endpoint {endpoint} refused {asked}: {status}{_reason(answer, body)}"
        )
    if not isinstance(answer, dict):
        start = " ".join(body[:120].decode("utf-8", "replace").split())
        raise TokenRefused(
            f"the token endpoint {endpoint} answered {asked} with something that is not a "
            f"JSON object (it starts {start!r})"
        )
    return answer


def _reason(answer: Any, body: bytes) -> str:
    """What a refusal says: RFC 6749's `error` and `error_description`, or GitHub's `message`."""
    if isinstance(answer, dict):
        parts = [
            str(answer[key])
            for key in ("error", "error_description", "message")
            if isinstance(answer.get(key), str | int)
        ]
        if parts:
            return " " + ": ".join(parts)
    text = excerpt(body.decode("utf-8", "replace"), 200)
    return f" {text}" if text else ""


Grant = Literal["client_credentials", "password", "refresh_token"]


class OAuth2(RefreshingAuth):
    """OAuth 2 access tokens from a token endpoint (RFC 6749 §4.3, §4.4, §6).

    `grant` is how the first token is obtained: the client's own credentials,
    a user's password, or a refresh token. Whenever the endpoint hands out a
    refresh token (or one was configured), renewals use it, and a rotated one
    replaces it (in memory: a restart starts from the configured credentials
    again). A refused refresh token falls back to the first grant, unless the
    refresh token is all there is.
    """

    def __init__(
        self,
        token_url: str,
        grant: Grant,
        *,
        client_id: str | None = None,
        client_secret: SecretStr | None = None,
        client_auth: Literal["basic", "body"] = "basic",
        scope: str | None = None,
        username: str | None = None,
        password: SecretStr | None = None,
        refresh_token: SecretStr | None = None,
    ) -> None:
        super().__init__()
        if grant == "password" and (username is None or password is None):
            raise ValueError("the password grant needs username and password")
        if grant == "refresh_token" and refresh_token is None:
            raise ValueError("the refresh_token grant needs a refresh_token")
        self.token_url, self.grant, self.scope = token_url, grant, scope
        self.client_id, self.client_auth = client_id, client_auth
        self._client_secret, self._username, self._password = client_secret, username, password
        self._refresh = refresh_token.get_secret_value() if refresh_token is not None else None

    def obtain(self, request: httpx.Request) -> TokenFlow:
        if self._refresh is not None:
            try:
                refresh = {"grant_type": "refresh_token", "refresh_token": self._refresh}
                return (yield from self._ask(request, refresh))
            except TokenEndpointFailed:
                raise
            except TokenRefused:
                if self.grant == "refresh_token":
                    raise
                self._refresh = None  # expired or revoked: the first grant gets a new one
        return (yield from self._ask(request, self._first_grant()))

    def _first_grant(self) -> dict[str, str]:
        if self.grant == "password":
            assert self._username is not None and self._password is not None
            return {
                "grant_type": "password",
                "username": self._username,
                "password": self._password.get_secret_value(),
            }
        return {"grant_type": "client_credentials"}

    def _ask(self, request: httpx.Request, form: dict[str, str]) -> TokenFlow:
        if self.scope:
            form["scope"] = self.scope
        headers: dict[str, str] = {}
        secret = self._client_secret.get_secret_value() if self._client_secret else None
        if self.client_id is not None and self.client_auth == "basic" and secret is not None:
            # RFC 6749 §2.3.1: each part form-encoded before Basic encodes the pair.
            pair = f"{quote(self.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = f"Basic {base64.b64encode(pair.encode()).decode()}"
        elif self.client_id is not None:
            form["client_id"] = self.client_id
            if secret is not None:
                form["client_secret"] = secret
        grant = form["grant_type"]
        response = yield _token_request(self.token_url, request, form=form, headers=headers)
        answer = _token_answer(response, self.token_url, f"the {grant} grant")
        value = answer.get("access_token")
        if not isinstance(value, str) or not value:
            raise TokenRefused(
                f"the token endpoint {self.token_url} answered the {grant} grant "
                "without an access_token"
            )
        kind = answer.get("token_type", "Bearer")
        if not isinstance(kind, str) or kind.lower() != "bearer":
            raise TokenRefused(
                f"the token endpoint {self.token_url} issued a {kind!r} token; "
                "only Bearer tokens are supported"
            )
        rotated = answer.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            self._refresh = rotated
        publish_secrets(value, self._refresh)
        return AccessToken.lasting(value, _seconds(answer.get("expires_in")))


def _seconds(value: Any) -> float | None:
    """`expires_in` as seconds; None when absent or unreadable (some send it as a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


# GitHub Apps

JWT_LIFETIME = 600
"""GitHub refuses an app JWT whose `exp` is more than 10 minutes ahead."""


def rsa_private_key(pem: str) -> RSAPrivateKey:
    """The RSA private key in `pem` (a GitHub App's `.pem`). Raises `ValueError`.

    A key pasted into an environment variable on one line, its newlines
    written as `\\n`, is read as the file it came from.
    """
    # Imported here: only GitHub App auth needs them (cryptography takes ~40 ms to load).
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    text = pem.strip()
    if "\\n" in text and "\n" not in text:
        text = text.replace("\\n", "\n")
    try:
        key = load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            "is not a PEM private key without a passphrase (the app's .pem file, "
            "'-----BEGIN RSA PRIVATE KEY-----' …)"
        ) from exc
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("is not an RSA key; GitHub App keys are RSA")
    return key


class GitHubAppAuth(RefreshingAuth):
    """A GitHub App installation token, minted with a JWT the app signs.

    The JWT (RS256; `iat` a minute in the past against clock drift, `exp`
    within GitHub's 10 minutes, `iss` the app's client ID or app ID) goes to
    `POST /app/installations/{id}/access_tokens`; the token it returns lasts
    an hour (`expires_at`), measured against GitHub's own `Date` so that a
    skewed local clock does not matter.
    """

    def __init__(
        self,
        api_url: str,
        app_id: str,
        installation_id: int,
        private_key: SecretStr,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.url = f"{api_url.rstrip('/')}/app/installations/{installation_id}/access_tokens"
        self.app_id = app_id
        self._key = rsa_private_key(private_key.get_secret_value())
        self.headers = dict(headers or {})

    def assertion(self) -> str:
        """A fresh JWT that says this app is asking."""
        now = int(time.time())
        # RFC 7519's iss is a string, an app ID too; GitHub takes it so.
        claims = {"iat": now - 60, "exp": now - 60 + JWT_LIFETIME, "iss": self.app_id}
        import jwt  # with `rsa_private_key`'s imports: only GitHub App auth needs it

        return jwt.encode(claims, self._key, algorithm="RS256")

    def obtain(self, request: httpx.Request) -> TokenFlow:
        signed = self.assertion()
        publish_secrets(signed)
        headers = {**self.headers, "Authorization": f"Bearer {signed}"}
        response = yield _token_request(self.url, request, headers=headers)
        answer = _token_answer(response, self.url, "the app's JWT")
        value = answer.get("token")
        if not isinstance(value, str) or not value:
            raise TokenRefused(f"{self.url} answered without an installation token")
        publish_secrets(value)
        return AccessToken.lasting(value, _lifetime(answer.get("expires_at"), response))


def _lifetime(expires_at: Any, response: httpx.Response) -> float | None:
    """Seconds from the answer to `expires_at`, both by the server's clock when it sent `Date`."""
    if not isinstance(expires_at, str):
        return None
    try:
        expiry = dt.datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if expiry.tzinfo is None:
        return None
    now = clock.http_date(response.headers.get("date")) or clock.now()
    return max(0.0, (expiry - now).total_seconds())
