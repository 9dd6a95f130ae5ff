"""Redaction: no secret leaves the process as text.

Owns the registry of secrets (every secret value of the config, registered
as it is loaded) and `redact`, which replaces them, and anything shaped like
a credential, with `***`. It sits below the engine and the connectors, in
the HTTP toolkit, because the text about a failure is made on every side.

Where it is called, and why that is enough: every text that leaves the
process is an exception's message, or text the state stores and commands
read back, or one of a few texts shown straight from memory.

- The error types every failure passes through redact their message as it is
  built: `connectors.errors.SyncError`, the base of every failure kind (a
  source's `SourceError`; the engine's config, mapping, Fragment and state
  errors, in `sync.errors` and `sync.state`), and the
  excerpt of a server's answer that `sync_http.session.RequestFailed`
  quotes. That excerpt, and every other quote of an answer cut to a length
  (`excerpt`: `connectors.http.rest`, `.paginators`, `sync_http.auth`;
  `sync.fragment`), is redacted whole before it is cut: a half secret would
  no longer match it.
  What prints or stores them (`run --json`, `check`, the logs) gets them clean.
- The state store redacts every text it keeps about a failure as it writes
  it: a run's error, a failed item's error and field, and its record (`sync.state`,
  `_kept_text`, `_kept_record`). Not all of them are exception messages:
  Fragment's reasons for refusing a ticket, a source's for a bad record, and
  the record itself. `status`, `failures list` and the status page show only
  what is stored.
- From memory: a pass's "internal error" (an unexpected exception, `sync.run`),
  the URLs `check` prints, and every log line and status page (`sync.shell.logs`,
  `sync.shell.web`), which redact what they write.

A secret is also looked for in the forms text gives it: JSON- and
repr-escaped, percent-encoded, HTML-escaped. Failed tickets' records lose
registered secrets only (`without_secrets`): the rest is ticket data that a
retry must map as it was.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values would redact noise (a one-letter password hides every `a`)."""

_Replace = Callable[[re.Match[str]], str]


def _keep_label(match: re.Match[str]) -> str:
    """The label (group 1) and the closing delimiter (group 2, if any) around `***`."""
    closing = match.group(2) if match.re.groups == 2 else ""
    return match.group(1) + REDACTED + closing


def _quoted_value(match: re.Match[str]) -> str:
    """A JSON or Python-literal value, replaced by `***` in the quotes it had (else JSON's)."""
    quote_mark = match.group(2)[0] if match.group(2)[0] in "\"'" else '"'
    return f"{match.group(1)}{quote_mark}{REDACTED}{quote_mark}"


# A key ending in one of these words names a secret: `access_token`, `client_secret`,
# `X-Amz-Signature`, `X-Api-Key`. The short ones stand alone: `sig=`, but not `design=`.
_LABEL_ENDINGS = r"(?:token|secret|password|passwd|api[_-]?key|signature)"
_SHORT_LABELS = r"(?:sig|pwd|jwt)"
_KEY_LABELS = r"(?:api[_-]?key|access[_-]?key|private[_-]?key)"
_PATTERNS: tuple[tuple[re.Pattern[str], _Replace], ...] = (
    (re.compile(r"(?i)(bearer\s+)[^\s'\",]+"), _keep_label),
    (re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{8,}"), _keep_label),
    # `Authorization: token …` (GitHub's classic form), `Authorization: <key>`, in a header
    # dump or a JSON or Python dict of headers.
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:[a-z][a-z0-9-]*\s+)?)[^\s'\",}]+"),
        _keep_label,
    ),
    # user:password@host in URLs; the password may hold `/` and `@` (the last `@` before the
    # host ends it), not `?` or `#`. `host:8080/…@…` is a port and a path, not a password.
    (
        re.compile(r"(://[^/:@\s'\"]*:)(?!\d+(?:[/?#\s'\"]|$))[^\s'\"?#]*(@)"),
        _keep_label,
    ),
    (
        re.compile(
            rf"(?i)((?:[a-z0-9_-]*{_LABEL_ENDINGS}|(?<![a-z0-9]){_SHORT_LABELS})=)(?!\*\*\*)[^&;\s'\"]+"
        ),
        _keep_label,
    ),
    # "password": "…" in JSON, 'password': '…' in a Python dict's repr.
    (
        re.compile(
            rf"(?i)([\"'][a-z0-9_-]*{_LABEL_ENDINGS}[\"']\s*:\s*)"
            r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s,}\]]+)"
        ),
        _quoted_value,
    ),
)
_SECRET_NAME = re.compile(
    rf"(?i)(?:.*{_LABEL_ENDINGS}|(?:.*[_-])?(?:{_SHORT_LABELS}|{_KEY_LABELS})|key)"
)
_SHAPED = re.compile(
    r"(?i:bearer\s|basic\s|authorization|token|secret|passw|pwd=|api[_-]?key|sig|jwt=)"
    r"|://[^/:@\s]*:"
)
"""Matches wherever one of `_PATTERNS` could: text it misses is searched once, not six times."""

_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()
_lock = threading.Lock()


def _forms(secret: str) -> set[str]:
    """`secret` as text may carry it: raw, JSON- and repr-escaped, percent-encoded, HTML."""
    in_repr = repr(secret)[1:-1]
    return {
        secret,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
        in_repr,
        # In the repr of a text holding both quotes, the one delimiting it is escaped.
        in_repr.replace("'", "\\'"),
        in_repr.replace('"', '\\"'),
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        html.escape(secret),
    }


def names_a_secret(name: str) -> bool:
    """Whether a parameter or key called `name` holds a secret (`password`, `X-Amz-Signature`).

    Any name ending in token, secret, password, passwd, api key or signature;
    `sig`, `pwd`, `jwt`, an access or private key, or `key`, alone or after `_`/`-`.
    """
    return _SECRET_NAME.fullmatch(name) is not None


def register_secrets(values: Iterable[str]) -> None:
    """Never show these values, in any of the forms text gives them, from now on."""
    global _longest_first
    with _lock:
        for value in values:
            if value and len(value) >= MIN_SECRET_LENGTH:
                _secrets.update(_forms(value))
        # Longest first: a secret holding another is replaced whole.
        _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def redact(text: str) -> str:
    """`text` with every registered secret and secret-shaped value replaced by `***`."""
    text = _without_registered(text)
    if _SHAPED.search(text):
        for pattern, replace in _PATTERNS:
            text = pattern.sub(replace, text)
    return text


def excerpt(text: str, limit: int) -> str:
    """The start of `text` for a message that quotes it: redacted, white space folded, cut.

    Redacted whole before it is cut: a secret across the cut would leave half
    of itself, which no longer matches it.
    """
    return " ".join(redact(text).split())[:limit]


def holds_secret(text: str) -> bool:
    """Whether `text` holds a registered secret (in any of its forms)."""
    return any(secret in text for secret in _longest_first)


def without_secrets(value: Any) -> Any:
    """`value` (a record: dicts, lists, text, scalars) with every registered secret replaced.

    Keys and text at any depth; anything else is returned as it is. Only
    registered secrets go: the rest is ticket data, kept as the source had it.
    """
    if isinstance(value, str):
        return _without_registered(value)
    if isinstance(value, dict):
        return {without_secrets(k): without_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_secrets(v) for v in value]
    return value


def _without_registered(text: str) -> str:
    for secret in _longest_first:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
