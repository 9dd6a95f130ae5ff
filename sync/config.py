"""Configuration: one TOML file, environment overrides, validated before any work.

Where the file comes from: `--config FILE`, else `$SYNC_CONFIG`, else
`./sync.toml`. `${VAR}` (or `${VAR:-default}`) anywhere in a string value is
replaced by the environment variable, so secrets stay out of the file.
Environment variables then override any key: `SYNC_FRAGMENT__TOKEN`,
`SYNC_STATE__URL`, `SYNC_CONNECTORS__ZENDESK__BATCH_SIZE`; a key a variable
overrides is never interpolated, so the file's `${FRAGMENT_TOKEN}` needs no
value when `SYNC_FRAGMENT__TOKEN` is set. Docker secrets:
`VAR_FILE=/run/secrets/x` stands in for an unset `VAR`, in `${VAR}` and for
`SYNC_*` variables alike. A relative path written in the file (a file
connector's `path`, a SQLite `state.url`) is relative to the file's folder;
defaults and environment variables keep the working directory's.

Everything that can be checked without touching the network is checked here,
and the first problem found raises `ConfigError` naming the key: unknown
keys, wrong types, unknown connector kinds, unset variables, empty secrets,
colliding field names, bad templates, hooks that can't be imported (for the
commands that map: a hook is code, imported only where it runs). This module does not read
sources, talk to Fragment or open the state database.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import unquote, unquote_plus, urlsplit

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connectors.base import ConnectorOptions, Person, unset
from connectors.registry import UnknownConnectorKind, connector_class
from connectors.values import Duration, HttpUrl
from sync.errors import ConfigError
from sync.spec import MappingSettings, email_problem, parse_mapping
from sync_http.redaction import names_a_secret

DEFAULT_CONFIG_FILE = Path("sync.toml")
ENV_PREFIX = "SYNC_"
"""Environment variables that override settings: `SYNC_FRAGMENT__TOKEN` sets `fragment.token`."""
CONFIG_FILE_VARIABLE = "SYNC_CONFIG"
FRAGMENT_URL = "https://api.onfragment.com/api/v1"

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_RELATIVE_SQLITE = re.compile(r"^(sqlite(?:\+\w+)?:///)(?!/|:memory:|file:)([^?]+)(.*)$")
"""A SQLite URL naming a relative file: scheme, path, query (`sqlite:///.sync/state.db`)."""
DEFAULT_PASS_TIMEOUT = dt.timedelta(hours=12)
"""A pass longer than this stops at its last checkpoint, unless the connector sets `timeout`.

Long enough for a big first backfill: a million tickets at Fragment's 60 requests a
minute of 100 take under 3 hours, and 9 at a 20-a-minute Freshdesk plan. It bounds a
source whose pagination never ends; the next pass resumes from the checkpoint.
"""
DEFAULT_MAX_JITTER = dt.timedelta(seconds=15)
"""The most an interval's default jitter delays a pass (`ScheduleSettings.spread`)."""
UID_NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]+$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class FragmentSettings(_Section):
    """How to reach Fragment and how hard to push."""

    url: HttpUrl = FRAGMENT_URL
    """Fragment's API base URL."""
    token: SecretStr | None = None
    """Fragment's API token (Settings > Developers in Fragment). Keep it out of the file:
    `"${FRAGMENT_TOKEN}"` or `SYNC_FRAGMENT__TOKEN`."""
    user_agent: str = "fragment-sync/0.1 (+https://github.com/fragment-sync)"
    """Sent with every request; Fragment's anti-DDoS filter drops requests without one."""
    batch_size: int = Field(default=100, ge=1, le=1000)
    """Tasks per `PUT /tasks/batch` request (1 to 1000); a connector's `batch_size` overrides it."""
    requests_per_minute: float = Field(default=60.0, gt=0)
    """The client-side request budget; Fragment documents 60 a minute."""
    timeout: Duration = dt.timedelta(seconds=30)
    """Each request as a whole: connecting, sending, waiting and reading the answer."""
    max_attempts: int = Field(default=8, ge=1, le=100)
    """Attempts per request before the pass gives up (its checkpoint stays intact)."""
    max_retry_wait: Duration = dt.timedelta(minutes=5)
    """The longest single wait between attempts; a `Retry-After` longer than this ends the pass
    instead (the next resumes)."""
    write_back_share: float = Field(default=0.25, gt=0, le=1)
    """The largest share of `requests_per_minute` a process's polls of Fragment's changes
    take (two-way sync); they take only turns no push wants besides."""
    max_in_flight: int = Field(default=2, ge=1, le=16)
    """Batches sent at once per connector; checkpoints still follow the source's order."""
    max_response_size: ByteSize = Field(default=ByteSize(16 * 1024 * 1024), ge=1024)
    """The largest answer read, once unpacked; a batch's acknowledgment echoes its tasks."""

    @field_validator("token")
    @classmethod
    def _usable_token(cls, token: SecretStr | None) -> SecretStr | None:
        # Sent as is in a header: an empty or padded one failed every request as a
        # "connection failed" (httpx refuses the header), retried for a minute.
        if token is not None:
            value = token.get_secret_value()
            if not value.strip():
                raise ValueError("is empty: give Fragment's API token")
            if value != value.strip():
                raise ValueError("has spaces or line breaks before or after it: remove them")
        return token

    def bearer_token(self) -> str:
        """The token to send. Raises `ConfigError` naming `fragment.token` when none is set.

        Only commands that talk to Fragment need one; `status` and the like work without.
        """
        if self.token is None:
            raise ConfigError(
                "fragment.token",
                "not set: put Fragment's API token in the environment (FRAGMENT_TOKEN, "
                'with token = "${FRAGMENT_TOKEN}" in the file) or in SYNC_FRAGMENT__TOKEN',
            )
        return self.token.get_secret_value()


class StateSettings(_Section):
    """Where watermarks, hashes, runs and failed items live (any SQLAlchemy URL)."""

    url: str = Field(default="sqlite:///.sync/state.db", repr=False)
    """Any SQLAlchemy URL: SQLite in `.sync/state.db` under the working directory by default,
    PostgreSQL or MySQL in production. A password in it is redacted from logs."""
    auto_upgrade: bool = True
    """Upgrade the state database's schema on start (`python -m sync db upgrade` does it by
    hand)."""
    keep_runs: int = Field(default=1000, ge=1)
    """Runs kept per connector in the run history, the newest; older ones are deleted as
    passes write new ones (a tenth more may be held in between)."""
    keep_runs_for: Duration | None = Field(default=None, exclude_if=unset)
    """Runs older than this are deleted from the run history (`"90d"`), checked every ten
    minutes by each process that writes runs; unset: 30 days."""
    idle_runs_every: Duration | None = Field(default=None, exclude_if=unset)
    """An idle pass (the source vouched that nothing changed, no failed item was due) is
    written to the run history at most once per this per connector; every pass updates
    the connector's summary row, which `status`, the page and `/metrics` read. Unset: 1h."""
    pool_size: int | None = Field(default=None, ge=1, le=1000)
    """Connections kept open to a PostgreSQL or MySQL state; as many again open while
    needed. Unset: `daemon.workers` plus 4 (a pass uses one at a time, its lease renewal
    another now and then; the scheduler loop and the HTTP endpoint one each)."""
    pool_timeout: Duration = dt.timedelta(seconds=30)
    """How long a pass waits for a connection of the pool; past it the pass fails (one log
    line, counted) and the next tries again."""

    @field_validator("keep_runs_for", "idle_runs_every")
    @classmethod
    def _positive(cls, value: dt.timedelta | None) -> dt.timedelta | None:
        if value is not None and value <= dt.timedelta(0):
            raise ValueError("must be longer than 0s")
        return value


class LoggingSettings(_Section):
    format: Literal["auto", "console", "json"] = "auto"
    """`auto`: readable on a terminal, JSON lines otherwise; or always `console` or `json`."""
    level: Literal["debug", "info", "warning", "error"] = "info"
    """The lowest level logged."""


class LockingSettings(_Section):
    """How processes sharing one state database take turns on a connector."""

    lease_ttl: Duration = dt.timedelta(seconds=60)
    """A holder that dies (kill -9, lost host) loses the connector after this long."""
    when_busy: Literal["skip", "wait"] = "skip"
    """`run --once` on a connector another process runs: skip it (exit 75) or wait."""
    wait_timeout: Duration = dt.timedelta(minutes=15)
    """With `when_busy = "wait"`, how long `run --once` waits for its turn."""

    @field_validator("lease_ttl")
    @classmethod
    def _ttl_floor(cls, value: dt.timedelta) -> dt.timedelta:
        if value.total_seconds() < 3:
            raise ValueError("must be at least 3s (the lease is renewed every third of it)")
        return value


class DaemonSettings(_Section):
    """The long-lived process: its HTTP endpoint and how it stops."""

    http_host: str = "127.0.0.1"
    """The address the HTTP endpoint listens on; the container image sets `0.0.0.0`."""
    http_port: int = Field(default=9464, ge=0, le=65535)
    """/healthz, /readyz, /metrics and the status page; 0 turns the endpoint off."""
    http_token: SecretStr | None = None
    """Bearer token for the status page and /metrics (at least 16 characters); /healthz and
    /readyz stay open. Required when `http_host` is beyond loopback."""
    http_allowed_hosts: list[str] = Field(default_factory=list)
    """Host names the endpoint answers to ("*": any). Empty: the loopback names and
    `http_host`, or any name when `http_host` is a wildcard address (the token guards)."""
    http_timeout: Duration = dt.timedelta(seconds=5)
    """An idle or slow client's connection is closed after this long."""
    MIN_TOKEN_LENGTH: ClassVar[int] = 16
    """A shorter `http_token` could be guessed over the network."""
    shutdown_timeout: Duration = dt.timedelta(seconds=30)
    """After SIGTERM, how long passes in flight get to checkpoint before the process exits."""
    stuck_after: Duration = dt.timedelta(hours=1)
    """/readyz fails when a pass runs longer than this (or its connector's timeout)."""
    workers: int | None = Field(default=None, ge=1, le=256)
    """Passes this process runs at once, each in a thread; the connectors due wait their
    turn, earliest first. Unset: one per connector, at most 16."""
    MAX_DEFAULT_WORKERS: ClassVar[int] = 16
    """The most workers a process runs with `workers` unset."""

    @field_validator("http_token")
    @classmethod
    def _token_shape(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None:
            return None
        text = token.get_secret_value()
        if not text.strip() or text != text.strip():
            raise ValueError("is empty or padded with whitespace")
        if len(text) < cls.MIN_TOKEN_LENGTH:
            raise ValueError(
                f"is shorter than {cls.MIN_TOKEN_LENGTH} characters (make one with "
                "`openssl rand -hex 32`)"
            )
        return token

    @field_validator("http_timeout")
    @classmethod
    def _timeout_floor(cls, value: dt.timedelta) -> dt.timedelta:
        if value.total_seconds() < 0.1:
            raise ValueError("must be at least 0.1s")
        return value


class ScheduleSettings(_Section):
    """When the daemon runs a connector: every `interval`, or on a `cron` line (UTC)."""

    interval: Duration | None = None
    """Run a pass this often (at least 1s). Set `interval` or `cron`, not both."""
    cron: str | None = None
    """A crontab line of five fields, in UTC (weekdays 0 and 7 are Sunday)."""
    jitter: Duration | None = None
    """How far each pass's due time moves at random: on an `interval`, up to half of it
    earlier or later (passes still average one an interval), so connectors on one schedule
    spread out and stay spread; on a `cron` line, up to all of it later. Unset: a twentieth
    of the interval (at most 15s); none for a cron line."""

    @field_validator("cron")
    @classmethod
    def _cron_line(cls, line: str | None) -> str | None:
        if line is not None:
            # Imported here: only a config with a cron line pays for APScheduler at load.
            from sync.cron import cron_trigger

            cron_trigger(line)  # the trigger the daemon will run: its ValueError says why not
        return line

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleSettings:
        if self.interval is not None and self.cron is not None:
            raise ValueError("set either interval or cron, not both")
        if self.interval is not None and self.interval.total_seconds() < 1:
            raise ValueError("interval must be at least 1s")
        if self.jitter is not None and self.jitter < dt.timedelta(0):
            raise ValueError("jitter can't be negative")
        return self

    @property
    def spread(self) -> dt.timedelta:
        """`jitter`, else its default: a twentieth of the interval, at most 15s (cron: none)."""
        if self.jitter is not None:
            return self.jitter
        if self.interval is None:
            return dt.timedelta(0)
        return min(self.interval / 20, DEFAULT_MAX_JITTER)


class ConversationSettings(BaseModel):
    """A connector's comments: summary fields in each task, and comment sync."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    enabled: bool | None = None
    """Read each ticket's comments; unset: on where the source's listing carries them at no
    extra request, off where they cost requests (the connector's page says which)."""
    excerpt: int = Field(default=280, ge=0, le=10_000)
    """Characters of the last comment kept in `fields.last_comment`; 0 leaves it out."""
    private: bool = False
    """Count and show private comments (internal notes, work notes) too."""
    sync: bool = False
    """Post each public comment to its Fragment task once (`POST /tasks/{uid}/comments`),
    with the requests task updates leave."""
    backfill: bool = False
    """With `sync`: post the comments made before comment sync was turned on as well."""

    def reads_comments(self, kind: Literal["listing", "requests"] | None) -> bool:
        """Whether a connector whose `Connector.comments` is `kind` reads comments: `enabled`,
        else on where the listing carries them ("listing")."""
        if kind is None:
            return False
        return self.enabled if self.enabled is not None else kind == "listing"

    def decisive(self, kind: Literal["listing", "requests"] | None) -> dict[str, Any] | None:
        """What of this section decides the tasks' content, for the settings fingerprint.

        None while it makes the tasks the defaults make (for `kind`), so the
        fingerprint of a config that doesn't touch the section stays as it was;
        `excerpt` and `private` count only while comments are read. `sync` and
        `backfill` post comments beside the tasks and change no task.
        """
        chosen, default = (
            {"enabled": True, "excerpt": section.excerpt, "private": section.private}
            if section.reads_comments(kind)
            else {"enabled": False}
            for section in (self, ConversationSettings())
        )
        return None if chosen == default else chosen


DEFAULT_PEOPLE_TTL = dt.timedelta(days=7)
"""How long the people cache trusts a source's answer about a person, by default."""


class PeopleSettings(BaseModel):
    """Who the connector's source user ids are (`mapping.assignee`): a table, a file, the cache."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    table: dict[str, str] = Field(default_factory=dict)
    """Source user id = email (`5 = "ana@example.com"`). Wins over the source and the cache:
    for sources that hide emails, and for corrections."""
    file: Path | None = None
    """A CSV file of people with the header `user_id,email` (and optionally `,name`), read at
    start; relative to the config file. `table` wins for a user id both list."""
    ttl: Duration = DEFAULT_PEOPLE_TTL
    """How long the source's answer about a person is trusted; the next pass that meets them
    after that asks again (`python -m sync people --refresh` asks at once)."""

    @field_validator("table")
    @classmethod
    def _emails(cls, table: dict[str, str]) -> dict[str, str]:
        for user_id, email in table.items():
            if not user_id.strip():
                raise ValueError("a user id is empty")
            if (problem := email_problem(email)) is not None:
                raise ValueError(f"{user_id}: {problem}")
        return table

    @field_validator("ttl")
    @classmethod
    def _positive(cls, ttl: dt.timedelta) -> dt.timedelta:
        if ttl <= dt.timedelta(0):
            raise ValueError("must be longer than 0s")
        return ttl


DEFAULT_WRITE_BACK_LOOKBACK = dt.timedelta(minutes=1)
"""How far before its mark a poll of Fragment's changes starts, by default."""


class WriteBackSettings(BaseModel):
    """What an operator's change to a task in Fragment writes back to its ticket (two-way)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    status: dict[Literal["TODO", "STARTED", "DONE"], str] = Field(default_factory=dict)
    """Fragment's status = the source's status to set (`DONE = "Resolved"`). A status left
    out is not written back; empty: no status is."""
    assignee: bool = False
    """Write the task's assignee back to the ticket: the operator's email, to the source's
    user through the people table and cache."""
    lookback: Duration = DEFAULT_WRITE_BACK_LOOKBACK
    """How far before its mark each poll of Fragment's changes starts: changes Fragment
    commits late are read again (each is written back once, whatever)."""

    @field_validator("status")
    @classmethod
    def _names(cls, status: dict[str, str]) -> dict[str, str]:
        for fragment_status, name in status.items():
            if not name.strip():
                raise ValueError(f"{fragment_status}: the source's status name is empty")
        return status

    @property
    def enabled(self) -> bool:
        """Whether anything is written back."""
        return bool(self.status) or self.assignee

    @property
    def fields(self) -> tuple[str, ...]:
        """The ticket fields written back: ("status",), ("assignee",), both or none."""
        return (*(("status",) if self.status else ()), *(("assignee",) if self.assignee else ()))


class ConnectorSettings(BaseModel):
    """One configured source. Keys not listed here belong to the connector's `Options`."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    kind: str
    """The connector kind; `python -m sync connectors` lists the installed ones."""
    enabled: bool = True
    """`false` leaves the connector out of runs and the daemon's schedule."""
    uid_namespace: str | None = None
    """The namespace of task uids, the connector's NAME when unset. Pin it before renaming a
    connector: uids, watermark, hashes and failed items follow it."""
    lookback: Duration | None = None
    """Re-read this long before the watermark each pass, for rows that commit late; unset:
    the connector's default (2s where the source's filter compares whole seconds, 1m for
    HubSpot and 5m for Jira, whose searches lag, else 0s)."""
    batch_size: int | None = Field(default=None, ge=1, le=1000)
    """Tasks per request to Fragment for this connector; unset: `fragment.batch_size`."""
    schedule: ScheduleSettings = ScheduleSettings(interval=dt.timedelta(minutes=5))
    """When the daemon runs this connector."""
    timeout: Duration | None = None
    """A pass longer than this stops at its last checkpoint (default 12h); an HTTP request's
    own timeout is `request_timeout`."""
    mapping: MappingSettings = MappingSettings()
    """How a ticket becomes a task; the connector's default mapping fills the keys left out."""
    census: Duration | None = None
    """How often the daemon compares the source's ticket ids with the tasks the state tracks
    and archives the tasks of tickets deleted or moved out of scope (`"6h"`); unset: never
    (`python -m sync census` takes one on demand). Only for connectors that list their ids."""
    conversation: ConversationSettings = ConversationSettings()
    """The ticket's comments: summary fields (`comment_count`, `last_comment_at`,
    `last_comment_author`, `last_comment`) and comment sync."""
    people: PeopleSettings = PeopleSettings()
    """Who the source's user ids are, for `mapping.assignee`: a table or CSV file of emails
    that wins over the source, and how long the source's answers are cached."""
    census_max_share: float = Field(default=0.1, ge=0, le=1)
    """The largest share of the connector's live tasks a census archives on its own; one that
    finds more gone archives nothing and fails (`python -m sync census --force` accepts it)."""
    write_back: WriteBackSettings = WriteBackSettings()
    """Two-way sync, off by default: which of an operator's changes in Fragment (status,
    assignee) go back to the ticket. Only for connectors that can write (their page says)."""

    @field_validator("uid_namespace")
    @classmethod
    def _namespace_shape(cls, value: str | None) -> str | None:
        if value is not None and not UID_NAMESPACE.match(value):
            raise ValueError("use letters, digits, '_', '.' and '-' only")
        return value

    @property
    def pass_timeout(self) -> dt.timedelta:
        """`timeout`, else `DEFAULT_PASS_TIMEOUT`."""
        return DEFAULT_PASS_TIMEOUT if self.timeout is None else self.timeout


class Settings(BaseSettings):
    """The whole file (passed in as arguments), the `SYNC_*` environment variables over it.

    A variable wins over the file; `SYNC_FRAGMENT__TOKEN_FILE=/run/secrets/token` (Docker
    secrets) stands in for an unset `SYNC_FRAGMENT__TOKEN`. Raises `ValidationError` for
    anything the file or a variable gets wrong.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    fragment: FragmentSettings = FragmentSettings()
    """How to reach Fragment and how hard to push."""
    state: StateSettings = StateSettings()
    """Where the sync keeps watermarks, hashes, runs and failed items."""
    logging: LoggingSettings = LoggingSettings()
    """Log format and level."""
    locking: LockingSettings = LockingSettings()
    """How processes sharing one state database take turns on a connector."""
    daemon: DaemonSettings = DaemonSettings()
    """The daemon's HTTP endpoint and how it stops."""
    connectors: dict[str, ConnectorSettings] = Field(default_factory=dict)
    """One table per source, `[connectors.NAME]`; NAME appears in logs and commands."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init kwargs; the environment (and its secret files) win.
        return (_WithoutFileVariables(env_settings), _SecretFiles(settings_cls), init_settings)


class _WithoutFileVariables(PydanticBaseSettingsSource):
    """The environment source, minus `SYNC_*_FILE` variables (`_SecretFiles` reads those)."""

    def __init__(self, inner: PydanticBaseSettingsSource) -> None:
        super().__init__(inner.settings_cls)
        self.inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return _drop_file_keys(self.inner())


class _SecretFiles(PydanticBaseSettingsSource):
    """`SYNC_FRAGMENT__TOKEN_FILE=/run/secrets/token` gives `fragment.token` the file's content.

    The Docker-secrets convention; a variable set directly (`SYNC_FRAGMENT__TOKEN`) wins.
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is returned at once, by __call__

    def __call__(self) -> dict[str, Any]:
        return _secret_file_settings()


class ConnectorConfig(BaseModel):
    """A connector's settings with its options validated by its own class."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    settings: ConnectorSettings
    options: ConnectorOptions
    people: dict[str, Person] = Field(default_factory=dict)
    """The people the config names (`people.table` over `people.file`), by source user id."""

    @property
    def uid_namespace(self) -> str:
        return self.settings.uid_namespace or self.name

    @property
    def kind(self) -> str:
        return self.settings.kind

    @property
    def comments_kind(self) -> Literal["listing", "requests"] | None:
        """How the connector's kind reads comments (`Connector.comments`)."""
        return connector_class(self.kind).comments_with(self.options)

    @property
    def reads_comments(self) -> bool:
        """Whether its passes read each ticket's comments (`[connectors.NAME.conversation]`)."""
        return self.settings.conversation.reads_comments(self.comments_kind)

    def fingerprint(self) -> str:
        """A hash of what decides the tasks this connector produces: kind, options, mapping,
        and the conversation's summary fields when they differ from the defaults.

        When it differs from the one stored with the last complete pass, the
        next pass reads everything again (the hash diff then pushes only the
        tasks the change really altered). Secrets enter it masked.
        """
        decisive: dict[str, Any] = {
            "kind": self.kind,
            "options": self.options.model_dump(mode="json"),
            "mapping": self.settings.mapping.model_dump(mode="json"),
        }
        if self.people:  # only then: a config without people keeps the fingerprint it had
            decisive["people"] = sorted((p.user_id, p.email) for p in self.people.values())
        conversation = self.settings.conversation.decisive(self.comments_kind)
        if conversation is not None:  # a config that leaves the section alone keeps its hash
            decisive["conversation"] = conversation
        text = json.dumps(decisive, sort_keys=True, default=str)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class Config(BaseModel):
    """The validated configuration the rest of the engine reads."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    fragment: FragmentSettings
    state: StateSettings
    logging: LoggingSettings
    locking: LockingSettings
    daemon: DaemonSettings
    connectors: dict[str, ConnectorConfig]
    source: str
    """Where the config came from: a file path, or "built-in demo"."""

    @property
    def workers(self) -> int:
        """The daemon's passes at once: `daemon.workers`, else one per enabled connector,
        at most `DaemonSettings.MAX_DEFAULT_WORKERS`."""
        if self.daemon.workers is not None:
            return self.daemon.workers
        enabled = sum(1 for c in self.connectors.values() if c.settings.enabled)
        return max(1, min(enabled, DaemonSettings.MAX_DEFAULT_WORKERS))

    @property
    def pool_size(self) -> int:
        """The state database's pool: `state.pool_size`, else `workers` plus 4."""
        return self.state.pool_size or self.workers + 4

    def secrets(self) -> list[str]:
        """Every secret value in the config, for redaction (`sync_http.redaction`).

        Each `SecretStr` (of a URL, the credentials in it: the rest is what
        errors must show), and the credentials in every URL, secret or not:
        `user:password@` and `?password=` (or any secret-named parameter) in
        `state.url`, `fragment.url`, a connector's `base_url`.
        """
        found = _url_secrets(self.state.url) or []
        for model in (self.fragment, self.daemon, *(c.options for c in self.connectors.values())):
            found.extend(_secret_values(model))
        return [s for s in found if s]


def _secret_values(value: Any) -> Iterator[str]:
    for _key, leaf in _leaves(value, ""):
        if isinstance(leaf, SecretStr):
            secret = leaf.get_secret_value()
            in_url = _url_secrets(secret)
            yield from [secret] if in_url is None else in_url
        else:
            yield from _url_secrets(leaf) or []


def _secret_fields(value: Any, key: str) -> Iterator[tuple[str, SecretStr]]:
    """Every `SecretStr` in `value` (a model, mapping or list), with its dotted key under `key`."""
    for name, leaf in _leaves(value, key):
        if isinstance(leaf, SecretStr):
            yield name, leaf


def _leaves(value: Any, key: str) -> Iterator[tuple[str, SecretStr | str]]:
    """Every `SecretStr` and text in `value` (a model, mapping or list), with its dotted key."""
    if isinstance(value, SecretStr | str):
        yield key, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _leaves(getattr(value, name), f"{key}.{name}" if key else name)
    elif isinstance(value, Mapping):
        for name, item in value.items():
            yield from _leaves(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{key}.{index}")


def _url_secrets(text: str) -> list[str] | None:
    """The credentials in a URL like `scheme://user:password@host/db?password=…`; None if no URL.

    Each as written and percent-decoded: an error may show either.
    """
    if "://" not in text:
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    found = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if value and names_a_secret(unquote_plus(name)):
            found += [value, unquote_plus(value)]
    return found


def find_config_file(explicit: Path | None) -> Path | None:
    """The config file to read: `explicit`, else `$SYNC_CONFIG`, else `./sync.toml` if present.

    Raises `ConfigError` when an explicitly named file does not exist.
    """
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError("--config", f"file {str(explicit)!r} not found")
        return explicit
    from_env = os.environ.get(CONFIG_FILE_VARIABLE)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(CONFIG_FILE_VARIABLE, f"file {from_env!r} not found")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_config(path: Path, *, import_hooks: bool = True) -> Config:
    """Read, interpolate and validate the TOML file at `path`.

    `import_hooks`: import each mapping's `hook` to check it can be; commands
    that don't map tickets leave it off, and run no code of the config's.
    Raises `ConfigError` naming the first key that is wrong.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(str(path), f"can't read: {exc.strerror}") from None
    return build_config(
        raw, source=str(path), folder=path.absolute().parent, import_hooks=import_hooks
    )


def build_config(
    raw: Mapping[str, Any], source: str, folder: Path | None = None, *, import_hooks: bool = True
) -> Config:
    """Validate an already parsed config tree; see `load_config`.

    `folder`: where the file is, against which its relative paths resolve.
    """
    data = _interpolate(raw, "", _overridden_keys())
    if folder is not None:
        data = _with_paths_resolved(data, folder)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise _config_error(exc, prefix="") from None
    if not settings.connectors:
        raise ConfigError("connectors", "no connectors configured: add a [connectors.NAME] table")
    connectors = {
        name: _connector_config(name, connector, import_hooks)
        for name, connector in settings.connectors.items()
    }
    _check_namespaces_unique(connectors)
    return Config(
        fragment=settings.fragment,
        state=settings.state,
        logging=settings.logging,
        locking=settings.locking,
        daemon=settings.daemon,
        connectors=connectors,
        source=source,
    )


def _connector_config(
    name: str, settings: ConnectorSettings, import_hooks: bool
) -> ConnectorConfig:
    key = f"connectors.{name}"
    try:
        cls = connector_class(settings.kind)
    except UnknownConnectorKind as exc:
        raise ConfigError(f"{key}.kind", str(exc)) from None
    try:
        options = cls.Options.model_validate(settings.model_extra or {})
    except ValidationError as exc:
        raise _config_error(exc, prefix=key) from None
    for secret_key, secret in _secret_fields(options, key):
        # Accepted, an empty secret failed every pass with a 401 (and read everything again).
        if not secret.get_secret_value().strip():
            raise ConfigError(secret_key, "is empty: give the secret (or leave the key out)")
    # The options live in `options` (typed, secrets masked); keep no raw copy of them.
    settings = ConnectorSettings.model_validate(
        settings.model_dump(include=set(ConnectorSettings.model_fields), exclude_unset=True)
    )
    if cls.default_mapping:
        settings = settings.model_copy(
            update={"mapping": _with_defaults(cls.default_mapping, settings.mapping)}
        )
    parse_mapping(settings.mapping, f"{key}.mapping", import_hook=import_hooks)
    conversation = settings.conversation
    wanted = "enabled" if conversation.enabled else "sync" if conversation.sync else None
    if wanted is not None and cls.comments_with(options) is None:
        how = (
            "say where the records keep them (see the connector's page: comments_field, "
            "comments_column)"
            if cls.comments is not None
            else "remove the key or set it to false"
        )
        raise ConfigError(
            f"{key}.conversation.{wanted}",
            f"the {settings.kind} connector can't read comments as configured; {how}",
        )
    writes = cls.writes_with(options)
    for field in settings.write_back.fields:
        if field not in writes:
            can = ", ".join(sorted(writes)) or "nothing"
            raise ConfigError(
                f"{key}.write_back.{field}",
                f"the {settings.kind} connector can't write a ticket's {field} back "
                f"(it can write: {can})"
                + ("; its page says which option tells it how" if field in cls.writes else ""),
            )
    people = people_directory(settings.people, f"{key}.people")
    return ConnectorConfig(name=name, settings=settings, options=options, people=people)


def people_directory(settings: PeopleSettings, key: str) -> dict[str, Person]:
    """The people `settings` name, by user id: its `file`'s rows, then its `table` over them.

    Raises `ConfigError` naming `key.file` (and the line) for a file that
    can't be read or holds a bad row.
    """
    found: dict[str, Person] = {}
    if settings.file is not None:
        found.update(_people_file(settings.file, f"{key}.file"))
    for user_id, email in settings.table.items():
        named = found.get(user_id)
        found[user_id] = Person(user_id, email.strip(), None if named is None else named.name)
    return found


def _people_file(path: Path, key: str) -> dict[str, Person]:
    """The rows of a people CSV (`user_id,email[,name]`, with that header), by user id."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(key, f"can't read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(key, f"{str(path)!r} is not UTF-8 text") from None
    reader = csv.reader(text.splitlines())
    header = [column.strip().lower() for column in next(reader, [])]
    if header[:2] != ["user_id", "email"] or header[2:] not in ([], ["name"]):
        raise ConfigError(
            key, f"{str(path)!r}: the first line must be the header user_id,email or "
            f"user_id,email,name, not {','.join(header)!r}"
        )  # fmt: skip
    found: dict[str, Person] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ConfigError(key, f"line {line}: {len(row)} columns, the header has {len(header)}")
        user_id, email = row[0].strip(), row[1].strip()
        if not user_id:
            raise ConfigError(key, f"line {line}: the user id is empty")
        if (problem := email_problem(email)) is not None:
            raise ConfigError(key, f"line {line} (user {user_id}): {problem}")
        if user_id in found:
            raise ConfigError(key, f"line {line}: user {user_id} is listed twice")
        name = row[2].strip() or None if len(row) > 2 else None
        found[user_id] = Person(user_id, email, name)
    return found


def _with_defaults(defaults: Mapping[str, Any], mapping: MappingSettings) -> MappingSettings:
    """The connector's default mapping, overridden key by key by what the user wrote.

    `fields` and `status_map` merge entry by entry, so a user adds one custom
    field without restating the connector's others.
    """
    chosen = mapping.model_dump(include=mapping.model_fields_set)
    merged = {**defaults, **chosen}
    for table in ("fields", "status_map"):
        merged[table] = {**defaults.get(table, {}), **chosen.get(table, {})}
    return MappingSettings.model_validate(merged)


def _check_namespaces_unique(connectors: Mapping[str, ConnectorConfig]) -> None:
    owners: dict[str, str] = {}
    for name, connector in connectors.items():
        namespace = connector.uid_namespace
        if not UID_NAMESPACE.match(namespace):
            raise ConfigError(
                f"connectors.{name}",
                f"the name {name!r} stands in for uid_namespace, which allows letters, digits, "
                "'_', '.' and '-' only: rename the connector or pin uid_namespace",
            )
        if namespace in owners:
            raise ConfigError(
                f"connectors.{name}.uid_namespace",
                f"{namespace!r} is already used by connector {owners[namespace]!r}; "
                "two connectors sharing a namespace would overwrite each other's tasks",
            )
        owners[namespace] = name


def _interpolate(value: Any, key: str, overridden: frozenset[str] = frozenset()) -> Any:
    """`value` with its `${VAR}`s replaced; keys in `overridden` are left as written.

    An environment variable sets those keys anyway: the file's variables there
    need no value (`SYNC_FRAGMENT__TOKEN` over `token = "${FRAGMENT_TOKEN}"`).
    """
    if key.lower() in overridden:
        return value
    if isinstance(value, str):
        return _VARIABLE.sub(lambda match: _variable(match, key), value)
    if isinstance(value, Mapping):
        return {
            k: _interpolate(v, f"{key}.{k}" if key else str(k), overridden)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, f"{key}.{i}", overridden) for i, v in enumerate(value)]
    return value


def _overridden_keys() -> frozenset[str]:
    """The dotted keys (lower case) that `SYNC_*` variables (or their `_FILE`s) set."""
    keys: set[str] = set()
    for variable, value in os.environ.items():
        if not _may_set(variable):
            continue
        name = variable.upper().removeprefix(ENV_PREFIX)
        if name.endswith("_FILE") and variable.removesuffix("_FILE") not in os.environ:
            name = name.removesuffix("_FILE")
        key = ".".join(name.lower().split("__"))
        keys.update(_json_leaves(key, value))
    return frozenset(keys)


def _json_leaves(key: str, value: str) -> Iterator[str]:
    """`key`, or for a variable holding a JSON table (`SYNC_FRAGMENT='{"token": …}'`) its keys.

    Such a table is merged key by key over the file's, so only its own keys are overridden.
    """
    try:
        tree = json.loads(value) if value.lstrip().startswith("{") else None
    except ValueError:
        tree = None
    if not isinstance(tree, dict):
        yield key
        return
    for name, item in tree.items():
        yield from _json_leaves(f"{key}.{str(name).lower()}", json.dumps(item))


def _with_paths_resolved(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`data` (the file's tables) with its relative paths made absolute under `folder`.

    They are a file connector's `Path` options and a SQLite URL's file (`state.url`,
    the `sql` connector's `url`). Only what the file itself says: the environment
    is laid over it afterwards.
    """
    resolved = dict(data)
    state = data.get("state")
    if isinstance(state, Mapping) and isinstance(state.get("url"), str):
        resolved["state"] = {**state, "url": _sqlite_url_under(state["url"], folder)}
    connectors = data.get("connectors")
    if isinstance(connectors, Mapping):
        resolved["connectors"] = {
            name: _connector_paths_under(table, folder) for name, table in connectors.items()
        }
    return resolved


def _sqlite_url_under(url: str, folder: Path) -> str:
    match = _RELATIVE_SQLITE.match(url)
    if match is None:
        return url
    scheme, path, query = match.groups()
    return f"{scheme}{folder / path}{query}"


def _connector_paths_under(table: Any, folder: Path) -> Any:
    if not isinstance(table, Mapping) or not isinstance(table.get("kind"), str):
        return table
    try:
        cls = connector_class(table["kind"])
    except UnknownConnectorKind:
        return table  # reported, naming the key, when the connector is built
    resolved = dict(table)
    people = table.get("people")
    if isinstance(people, Mapping) and isinstance(people.get("file"), str):
        path = Path(people["file"])
        resolved["people"] = {**people, "file": str(path if path.is_absolute() else folder / path)}
    for name, field in cls.Options.model_fields.items():
        value = table.get(name)
        if field.annotation in (Path, Path | None) and isinstance(value, str):
            path = Path(value)
            resolved[name] = str(path if path.is_absolute() else folder / path)
        elif isinstance(value, str):
            resolved[name] = _sqlite_url_under(value, folder)  # others are left as they are
    return resolved


def _variable(match: re.Match[str], key: str) -> str:
    name, default = match.group(1), match.group(2)
    value = os.environ.get(name)
    if value is None and os.environ.get(f"{name}_FILE"):
        value = _read_secret_file(f"{name}_FILE", key)
    if value is None:
        if default is None:
            raise ConfigError(key, f"environment variable {name} is not set")
        return default
    return value


def _read_secret_file(variable: str, key: str) -> str:
    """The content of the file `$variable` names (Docker secrets), without the final newline."""
    path = os.environ[variable]
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            key or variable, f"can't read {variable}={path}: {exc.strerror}"
        ) from None


def _may_set(variable: str) -> bool:
    """Whether the environment variable `variable` may override a setting."""
    upper = variable.upper()
    return upper.startswith(ENV_PREFIX) and upper != CONFIG_FILE_VARIABLE


def _drop_file_keys(tree: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _drop_file_keys(v) if isinstance(v, dict) else v
        for k, v in tree.items()
        if not k.endswith("_file")
    }


def _secret_file_settings() -> dict[str, Any]:
    """The settings `SYNC_*_FILE` variables give, as a tree of tables."""
    tree: dict[str, Any] = {}
    for variable in sorted(os.environ):
        if not (variable.startswith(ENV_PREFIX) and variable.endswith("_FILE")):
            continue
        if variable.removesuffix("_FILE") in os.environ:
            continue
        keys = variable.removeprefix(ENV_PREFIX).removesuffix("_FILE").lower().split("__")
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = _read_secret_file(variable, ".".join(keys))
    return tree


def _config_error(exc: ValidationError, prefix: str) -> ConfigError:
    """One `ConfigError` naming every key pydantic found wrong, the first one as `key`."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        # A validator's own words arrive as "Value error, <words>": the words are the message.
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append((key, message))
    first_key, first_message = problems[0]
    more = "".join(f"\n  {k}: {m}" for k, m in problems[1:])
    return ConfigError(first_key, first_message + more)
