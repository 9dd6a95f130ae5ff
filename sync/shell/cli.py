"""The command line: `python -m sync …` and the `fragment-sync` script.

Sits on top of everything; only `sync.__main__` imports it. Exit codes: 0 every connector
succeeded, 1 some connector failed or was stopped (its checkpoint is intact),
2 a setting must be fixed first (`FixConfiguration`: the configuration, or the state
database it names, is unusable), 75
(EX_TEMPFAIL) some connector was skipped because another process runs it
and none failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel

from sync.config import Config, find_config_file, load_config
from sync.errors import ConfigError, FixConfiguration, SyncError
from sync.shell import logs
from sync.state import HEAD_REVISION, HistoryPolicy, Pool, StateError, StateStore

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_BUSY = 0, 1, 2, 75
EXIT_CODES = {
    EXIT_OK: "every connector succeeded (or the command did what it was asked)",
    EXIT_FAILED: "some connector failed or was stopped; its checkpoint is intact",
    EXIT_CONFIG: "a setting must be fixed first: the configuration, or the state database it "
    "names, is unusable (the message names the key)",
    EXIT_BUSY: "some connector was skipped because another process runs it, and none failed "
    "(EX_TEMPFAIL)",
}
"""What each exit code means, for the command-line reference (`sync.shell.reference`)."""
CHECK_TIMEOUT = dt.timedelta(seconds=5)
"""`check` waits this long for each server's answer, once: it diagnoses, it doesn't ride out."""
NO_CONFIG = "no config file found (give --config, set SYNC_CONFIG or add ./sync.toml)"
log = structlog.get_logger("sync.shell.cli")
_Settings = TypeVar("_Settings", bound=BaseModel)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the command, return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["emulator"]:
        # The emulator has its own flags (faults, users, rate limit): one parser, one place.
        from fragment_emulator.__main__ import main as emulator_main

        return emulator_main(arguments[1:], prog="python -m sync emulator")
    parser = _parser()
    args = parser.parse_args(arguments)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_CONFIG
    try:
        code: int = args.handler(args)
    except BrokenPipeError:  # whoever read our output has gone (`| head`)
        _silence_stdout()
        return EXIT_OK
    except StateError as exc:
        print(f"state error (state.url): {logs.redact(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    except FixConfiguration as exc:
        print(f"configuration error: {logs.redact(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fragment-sync", description="Keep Fragment tasks in step with tickets elsewhere."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="sync: one pass with --once, else the daemon")
    _config_flag(run)
    run.add_argument("--once", action="store_true", help="one pass over the connectors, then exit")
    run.add_argument("--connector", action="append", metavar="NAME", help="only these (repeat)")
    run.add_argument("--dry-run", action="store_true", help="map and diff; push and store nothing")
    run.add_argument("--full", action="store_true", help="ignore the watermark (a backfill)")
    run.add_argument("--json", action="store_true", help="one JSON summary on stdout")
    run.set_defaults(handler=_run)

    census = commands.add_parser(
        "census", help="archive the tasks of tickets deleted or moved out of scope"
    )
    _config_flag(census)
    census.add_argument(
        "--connector", action="append", metavar="NAME", help="only these (repeat); default: "
        "every enabled connector with `census` set"
    )  # fmt: skip
    census.add_argument("--force", action="store_true", help="archive even beyond census_max_share")
    census.add_argument(
        "--dry-run", action="store_true", help="count what is gone; archive nothing"
    )
    census.add_argument("--json", action="store_true", help="one JSON summary on stdout")
    census.set_defaults(handler=_census)

    people = commands.add_parser(
        "people", help="who each connector's assignees are: resolved, not, and why"
    )
    _config_flag(people)
    people.add_argument("--connector", action="append", metavar="NAME", help="only these (repeat)")
    people.add_argument(
        "--refresh",
        action="store_true",
        help="ask each source again about everyone cached, within its rate limit",
    )
    people.add_argument("--json", action="store_true", help="one JSON document on stdout")
    people.set_defaults(handler=_people)

    status = commands.add_parser(
        "status", help="watermark, last run and failed items per connector"
    )
    _config_flag(status)
    status.add_argument("--json", action="store_true", help="one JSON document on stdout")
    status.set_defaults(handler=_status)

    check = commands.add_parser(
        "check", help="validate the config, reach every source and Fragment"
    )
    _config_flag(check)
    check.set_defaults(handler=_check)

    uid = commands.add_parser("uid", help="print the Fragment task uid of a ticket")
    _config_flag(uid)
    uid.add_argument("connector", help="the connector's name, as in [connectors.NAME]")
    uid.add_argument("source_id", help="the ticket's id in the source")
    uid.set_defaults(handler=_uid)

    failures = commands.add_parser("failures", help="list, retry or drop failed items")
    _config_flag(failures)
    failures.add_argument(
        "action",
        nargs="?",
        choices=["list", "retry", "drop"],
        default="list",
        help="list them, retry them now, or drop (forget) them",
    )
    failures.add_argument("--connector", metavar="NAME", help="only this connector's")
    failures.add_argument("--json", action="store_true", help="one JSON document on stdout")
    failures.set_defaults(handler=_failures)

    reset = commands.add_parser("reset", help="move a connector's watermark back, to replay")
    _config_flag(reset)
    reset.add_argument("connector", help="the connector's name, as in [connectors.NAME]")
    reset.add_argument("--to", metavar="ISO8601", help="the new watermark (default: none: all)")
    reset.add_argument(
        "--forget-hashes",
        action="store_true",
        help="also forget what was pushed, so every ticket read is pushed again",
    )
    reset.set_defaults(handler=_reset)

    connectors = commands.add_parser("connectors", help="list the installed connector kinds")
    connectors.set_defaults(handler=_connectors)

    commands.add_parser(
        "emulator",
        help="serve the Fragment API emulator (python -m sync emulator --help for its flags)",
        add_help=False,
    )

    config = commands.add_parser("config", help="the configuration's JSON Schema, for editors")
    config.add_argument(
        "action", choices=["schema"], help="schema: print the JSON Schema of sync.toml"
    )
    config.set_defaults(handler=_config)

    db = commands.add_parser("db", help="state database maintenance")
    _config_flag(db)
    db.add_argument("action", choices=["upgrade"], help="upgrade: migrate it to the latest schema")
    db.set_defaults(handler=_db)
    return parser


def _config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML file (default: $SYNC_CONFIG, ./sync.toml)"
    )


def _configure_logging(config: Config | None) -> None:
    if config is None:
        logs.configure()
        return
    logs.register_secrets(config.secrets())
    logs.configure(config.logging.level, config.logging.format)


def _load(args: argparse.Namespace, maps: bool = False) -> Config:
    """The config; `maps`: the command maps tickets, so the mappings' hooks are imported."""
    path = find_config_file(args.config)
    if path is None:
        raise ConfigError("--config", NO_CONFIG)
    config = load_config(path, import_hooks=maps)
    _configure_logging(config)
    return config


def _open_state(config: Config, *, dry_run: bool = False) -> StateStore:
    """The state store; for a dry run, one that reads what is there and creates nothing."""
    if dry_run:
        return StateStore.open_to_read(config.state.url)
    settings = config.state
    history = HistoryPolicy(keep=settings.keep_runs)
    if settings.keep_runs_for is not None:
        history = replace(history, keep_for=settings.keep_runs_for)
    if settings.idle_runs_every is not None:
        history = replace(history, idle_every=settings.idle_runs_every)
    pool = Pool(config.pool_size, settings.pool_timeout.total_seconds())
    store = StateStore.open(settings.url, upgrade=settings.auto_upgrade, history=history, pool=pool)
    revision = store.revision()
    if revision != HEAD_REVISION:  # only with auto_upgrade off: open() upgrades otherwise
        store.close()
        at = "has no schema yet" if revision is None else f"is at schema revision {revision}"
        raise ConfigError(
            "state.auto_upgrade",
            f"is false and the state database {at}; this version needs {HEAD_REVISION}: "
            "run `python -m sync db upgrade`, then start again",
        )
    return store


@contextlib.contextmanager
def _demo_or_config(
    args: argparse.Namespace, *, run: bool = False, maps: bool = False
) -> Iterator[Config]:
    """The configured setup, or with no config at all, the built-in demo and its emulator.

    `run`: the command runs the demo (and creates it, unless it is a dry run).
    `maps`: the command maps tickets (as `run` does), so the mappings' hooks are imported.
    Other commands (`status`, `failures`, `check`, `reset`) look at a demo that
    ran in this folder, and fail naming the missing config where none did.
    """
    path = find_config_file(args.config)
    if path is not None:
        yield _load(args, maps=maps or run)
        return
    import tempfile

    from fragment_emulator import Emulator
    from sync.shell.demo import DEMO_DIR, DEMO_TOKEN, demo_config, ensure_demo_tickets

    dry_run = getattr(args, "dry_run", False)
    tickets = DEMO_DIR / "demo" / "tickets.jsonl"
    if not run and not (DEMO_DIR / "state.db").exists():
        raise ConfigError(
            "--config",
            f"{NO_CONFIG}, and the built-in demo has not run in this folder "
            "(`python -m sync run --once` runs it)",
        )
    with contextlib.ExitStack() as stack:
        # A dry run creates nothing: the bundled tickets go to a folder removed after it.
        directory = (
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fragment-sync-demo-")))
            if dry_run and not tickets.exists()
            else DEMO_DIR
        )
        ensure_demo_tickets(directory)
        database = ":memory:" if dry_run else str(DEMO_DIR / "emulator.db")
        emulator = stack.enter_context(Emulator(db_path=database, tokens=[DEMO_TOKEN]))
        config = demo_config(emulator.base_url, directory)
        _configure_logging(config)
        if run:
            print(
                "No config found: running the built-in demo (1,200 bundled tickets -> the jsonl "
                f"connector -> a Fragment emulator at {emulator.base_url}; state in "
                f"{DEMO_DIR}/). See config.example.toml to sync a real source.",
                file=sys.stderr,
            )
        else:
            print(
                f"No config found: using the built-in demo's setup, in {DEMO_DIR}/ (see "
                "config.example.toml to sync a real source).",
                file=sys.stderr,
            )
        yield config


def _run(args: argparse.Namespace) -> int:
    if args.dry_run and not args.once:
        raise ConfigError("--dry-run", "only with --once: the daemon pushes what it reads")
    with _demo_or_config(args, run=True) as config:
        names = args.connector or None
        for name in names or ():
            if name not in config.connectors:
                raise ConfigError("--connector", f"no connector named {name!r} in {config.source}")
        if not args.dry_run:
            config.fragment.bearer_token()  # a run without one would only fail at its first push
        store = _open_state(config, dry_run=args.dry_run)
        stop = threading.Event()
        plan = _PlanPrinter(stop, as_json=args.json) if args.dry_run else None
        with _start_up_frozen():
            if not args.once:
                from sync.shell.daemon import run_daemon

                return run_daemon(config, store, names, stop)
            summaries = _run_once(args, config, store, names, stop, plan)
    if plan is not None and args.json:
        plan.finish_document(summaries)
    elif args.json:
        ok = all(s.ok for s in summaries)
        document = {"ok": ok, "connectors": [s.as_json() for s in summaries]}
        print(json.dumps(document, ensure_ascii=False))
    else:
        _print_summaries(summaries, dry_run=args.dry_run)
    return _exit_code(summaries)


def _run_once(
    args: argparse.Namespace,
    config: Config,
    store: StateStore,
    names: list[str] | None,
    stop: threading.Event,
    plan: _PlanPrinter | None,
) -> list[Any]:
    from sync.run import RunOptions, run_once
    from sync.shell.progress import Progress

    locking = config.locking
    options = RunOptions(
        full=args.full,
        dry_run=args.dry_run,
        planned=plan,
        progress=Progress(),
        stop=stop,
        lease_ttl=locking.lease_ttl.total_seconds(),
        wait_for_lease=(
            locking.wait_timeout.total_seconds() if locking.when_busy == "wait" else None
        ),
    )
    with _stop_on_signals(stop):
        summaries = run_once(config, store, names, options)
    store.close()
    return summaries


@contextlib.contextmanager
def _start_up_frozen() -> Iterator[None]:
    """Keep the cyclic garbage collector off what start-up built, while the run goes on.

    The modules, settings and engine live as long as the run; without this
    every full collection walks them again while tickets stream by (about 5%
    of a backfill's CPU).
    """
    import sync.run  # noqa: F401  (what a pass needs, loaded before the freeze)

    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _exit_code(summaries: Sequence[Any]) -> int:
    outcomes = {s.outcome for s in summaries}
    if outcomes <= {"ok"}:
        return EXIT_OK
    if outcomes <= {"ok", "busy"}:
        return EXIT_BUSY
    return EXIT_FAILED


class _PlanPrinter:
    """Prints each task a dry run would push, as it is planned; stops once the reader has gone.

    One JSON line each; with `as_json`, entries of one JSON document streamed
    as they come (`{"planned": [...], "ok": …, "connectors": [...]}`), which
    `finish_document` closes with the summaries.
    """

    def __init__(self, stop: threading.Event, *, as_json: bool) -> None:
        self.stop = stop
        self.as_json = as_json
        self.count = 0

    def __call__(self, name: str, payload: Any) -> None:
        entry = json.dumps({"connector": name, "would_push": payload.task()}, ensure_ascii=False)
        if self.as_json:
            entry = ('{"planned": [\n' if self.count == 0 else ",\n") + entry
        self.count += 1
        self._print(entry, end="" if self.as_json else "\n")

    def finish_document(self, summaries: Sequence[Any]) -> None:
        ok = json.dumps(all(s.ok for s in summaries))
        connectors = json.dumps([s.as_json() for s in summaries], ensure_ascii=False)
        start = '{"planned": [' if self.count == 0 else "\n"
        self._print(f'{start}], "ok": {ok}, "connectors": {connectors}}}')

    def _print(self, text: str, end: str = "\n") -> None:
        try:
            print(text, end=end)
        except BrokenPipeError:  # `--dry-run | head`: nobody reads the rest
            _silence_stdout()
            self.stop.set()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _count(number: int, noun: str) -> str:
    """`1 request`, `12 requests`."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _print_summaries(summaries: Sequence[Any], dry_run: bool) -> None:
    verb = "would push" if dry_run else "pushed"
    for s in summaries:
        status = "ok" if s.ok else f"{s.outcome.upper()}: {logs.redact(s.error or '')}"
        skipped = f", skipped {s.skipped_deleted} deleted" if s.skipped_deleted else ""
        print(
            f"{s.name}: pulled {s.pulled}, {verb} {s.pushed}, unchanged {s.unchanged}{skipped}, "
            f"failed {s.failed}, watermark {s.watermark or '-'} in {s.duration_s:.1f}s "
            f"({_count(s.requests, 'request')}) — {status}"
        )


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM, SIGINT and SIGHUP ask the pass to stop after its batch in flight."""
    from sync.run import STOP_SIGNALS

    def request_stop(signum: int, _frame: Any) -> None:
        log.warning("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _census(args: argparse.Namespace) -> int:
    from sync.census import census_once
    from sync.run import RunOptions

    with _demo_or_config(args, maps=True) as config:
        names = args.connector or None
        for name in names or ():
            if name not in config.connectors:
                raise ConfigError("--connector", f"no connector named {name!r} in {config.source}")
        if not args.dry_run:
            config.fragment.bearer_token()
        store = _open_state(config, dry_run=args.dry_run)
        stop = threading.Event()
        locking = config.locking
        options = RunOptions(
            dry_run=args.dry_run,
            stop=stop,
            lease_ttl=locking.lease_ttl.total_seconds(),
            wait_for_lease=(
                locking.wait_timeout.total_seconds() if locking.when_busy == "wait" else None
            ),
        )
        with _stop_on_signals(stop):
            summaries = census_once(config, store, names, options, force=args.force)
        store.close()
    if args.json:
        document = {
            "ok": all(s.ok for s in summaries),
            "connectors": [s.as_json() for s in summaries],
        }
        print(json.dumps(document, ensure_ascii=False))
    else:
        verb = "would archive" if args.dry_run else "archived"
        for s in summaries:
            status = "ok" if s.ok else f"{s.outcome.upper()}: {logs.redact(s.error or '')}"
            count = s.gone if args.dry_run else s.archived
            print(
                f"{s.name}: {s.at_source} at the source, {s.tracked} tracked, {s.gone} gone "
                f"({s.share:.1%}), {verb} {count}, {s.back} back, failed {s.failed} in "
                f"{s.duration_s:.1f}s ({_count(s.requests, 'request')}) — {status}"
            )
        if not summaries:
            print("no connector has `census` set; name one with --connector")
    return _exit_code(summaries)


def _people(args: argparse.Namespace) -> int:
    from sync.shell.people import connector_people, render

    with _demo_or_config(args) as config:
        names = args.connector or list(config.connectors)
        for name in names:
            if name not in config.connectors:
                raise ConfigError("--connector", f"no connector named {name!r} in {config.source}")
        store = _open_state(config)
        try:
            found = [
                connector_people(config.connectors[name], store, refresh=args.refresh)
                for name in names
            ]
        finally:
            store.close()
    ok = all(people.error is None for people in found)
    if args.json:
        document = {"ok": ok, "connectors": [people.as_json() for people in found]}
        print(json.dumps(document, ensure_ascii=False))
    else:
        for people in found:
            print(logs.redact(render(people)))
    return EXIT_OK if ok else EXIT_FAILED


def _status(args: argparse.Namespace) -> int:
    from sync.shell.status import collect, render_table

    with _demo_or_config(args) as config:
        store = _open_state(config)
        rows = collect(config, store)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, default=str))
    else:
        print(render_table(rows))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    with _demo_or_config(args, maps=True) as config:
        return _check_config(config)


def _check_config(config: Config) -> int:
    """Reach the state, each source and Fragment once each, saying which answered."""
    from connectors.registry import connector_class
    from sync.fragment import FragmentClient

    config.fragment.bearer_token()
    problems = 0
    fragment = logs.redact(config.fragment.url)  # it may carry credentials
    print(f"config {config.source}: ok ({_count(len(config.connectors), 'connector')})")
    try:
        store = _open_state(config)
        store.close()
        print("state database: ok")
    except StateError as exc:
        print(f"state database: FAILED: {exc}")
        problems += 1
    for name, connector in config.connectors.items():
        source = connector_class(connector.kind)(name, _diagnosis(connector.options))
        try:
            source.check()
            print(f"connector {name} ({connector.kind}): ok")
        except SyncError as exc:  # whatever the pass would do with it, `check` reports it
            print(f"connector {name} ({connector.kind}): FAILED: {exc}")
            problems += 1
        finally:
            source.close()
    try:
        with FragmentClient(_diagnosis(config.fragment)) as client:
            account = client.account()
        print(f"fragment {fragment}: ok (account {account.get('name', '?')})")
    except SyncError as exc:
        print(f"fragment {fragment}: FAILED: {exc}")
        problems += 1
    return EXIT_OK if problems == 0 else EXIT_FAILED


def _diagnosis(settings: _Settings) -> _Settings:
    """`settings` for one try with a short timeout, where they say how many and how long.

    `check` answers in seconds: an unreachable server is what it is there to
    show, not to ride out as a pass does. Fragment's timeout is `timeout`,
    an HTTP source's `request_timeout`.
    """
    fields = type(settings).model_fields
    changes: dict[str, Any] = {"max_attempts": 1} if "max_attempts" in fields else {}
    for name in ("timeout", "request_timeout"):
        value = getattr(settings, name, None) if name in fields else None
        if isinstance(value, dt.timedelta) and value > CHECK_TIMEOUT:
            changes[name] = CHECK_TIMEOUT
    return settings.model_copy(update=changes)


def _uid(args: argparse.Namespace) -> int:
    from sync.mapping import task_uid

    path = find_config_file(args.config)
    if path is None:
        namespace = args.connector  # without a config the namespace is the name
    else:
        config = _load(args)
        if args.connector not in config.connectors:
            raise ConfigError("connector", f"no connector named {args.connector!r}")
        namespace = config.connectors[args.connector].uid_namespace
    print(task_uid(namespace, args.source_id))
    return EXIT_OK


def _failures(args: argparse.Namespace) -> int:
    with _demo_or_config(args, maps=args.action == "retry") as config:
        return _failures_of(args, config)


def _failures_of(args: argparse.Namespace, config: Config) -> int:
    store = _open_state(config)
    if args.connector and args.connector not in config.connectors:
        raise ConfigError("--connector", f"no connector named {args.connector!r}")
    names = [args.connector] if args.connector else list(config.connectors)
    if args.action == "retry":
        from sync.run import RunOptions, run_once

        config.fragment.bearer_token()
        summaries = run_once(config, store, names, RunOptions(retry_only=True))
        _print_summaries(summaries, dry_run=False)
        return EXIT_OK if all(s.ok for s in summaries) else EXIT_FAILED
    if args.action == "drop":
        for name in names:
            dropped = store.drop_failed(config.connectors[name].uid_namespace)
            print(f"{name}: dropped {dropped} failed items")
        return EXIT_OK
    # Streamed a page at a time: a broken mapping can leave a million of them.
    count = 0
    for name in names:
        for page in store.failed_item_pages(config.connectors[name].uid_namespace, _PAGE):
            for item in page:
                if args.json:
                    entry = json.dumps(
                        {"connector": name, **_failed_json(item)}, ensure_ascii=False, default=str
                    )
                    print("[" if count == 0 else ",", entry)
                else:
                    print(
                        f"{name} {item.source_id} [{item.stage}] "
                        f"attempts {item.attempts}, {_next_try(item)}: {item.error}"
                    )
                count += 1
    # Failed comments (comment sync): refused by Fragment, tried again on their own.
    from sync.state.comments import CommentLedger

    comments = 0
    for name in names:
        if not config.connectors[name].settings.conversation.sync:
            continue
        namespace = config.connectors[name].uid_namespace
        for source_id, comment_id, error in CommentLedger(store).failures(namespace):
            if args.json:
                entry = json.dumps(
                    {"connector": name, "source_id": source_id, "stage": "comment",
                     "comment_id": comment_id, "error": error},
                    ensure_ascii=False,
                )  # fmt: skip
                print("[" if count + comments == 0 else ",", entry)
            else:
                print(f"{name} {source_id} [comment {comment_id}]: {error}")
            comments += 1
    refusals, conflicts = _write_back_failures(args, config, store, names, count + comments)
    if args.json:
        print("]" if count + comments + refusals + conflicts else "[]")
    else:
        print(f"{count} failed items")
        if comments:
            print(f"{comments} failed comments")
        if refusals or conflicts:
            print(f"{refusals} refused write-backs, {conflicts} write-back conflicts")
    return EXIT_OK


_PAGE = 1000
"""Failed items read from the state at a time by `failures list`."""


def _reset(args: argparse.Namespace) -> int:
    with _demo_or_config(args) as config:
        return _reset_in(args, config)


def _reset_in(args: argparse.Namespace, config: Config) -> int:
    from sync.run import owner_id
    from sync.watermark import decode_text

    if args.connector not in config.connectors:
        raise ConfigError("connector", f"no connector named {args.connector!r}")
    namespace = config.connectors[args.connector].uid_namespace
    target = None
    if args.to is not None:
        try:
            target = decode_text(args.to)
        except ValueError as exc:
            raise ConfigError("--to", str(exc)) from None
    store = _open_state(config)
    owner = owner_id()
    # Take the lease so no pass of this connector runs while its state changes under it.
    if not store.acquire_lease(namespace, owner, config.locking.lease_ttl.total_seconds()):
        print(f"{args.connector} is being run by another process; try again later", file=sys.stderr)
        return EXIT_BUSY
    try:
        store.set_watermark(namespace, target)
        if args.forget_hashes:
            store.forget_tasks(namespace)
    finally:
        store.release_lease(namespace, owner)
    where = "nothing (the next pass reads everything)" if target is None else args.to
    hashes = "; pushed-content hashes forgotten" if args.forget_hashes else ""
    print(f"{args.connector}: watermark set to {where}{hashes}")
    return EXIT_OK


def _write_back_failures(
    args: argparse.Namespace, config: Config, store: Any, names: list[str], listed: int
) -> tuple[int, int]:
    """Print two-way sync's refused writes and the conflicts the source won (`failures list`),
    after `listed` entries; their counts."""
    from sync.state.write_back import WriteBackLedger

    refusals = conflicts = 0
    for name in names:
        if not config.connectors[name].settings.write_back.enabled:
            continue
        for row in WriteBackLedger(store).rows(config.connectors[name].uid_namespace):
            refused = row.error is not None
            if args.json:
                entry = {
                    "connector": name, "source_id": row.source_id,
                    "stage": "write_back" if refused else "conflict", "field": row.field,
                    "wanted": row.wanted, "attempts": row.attempts, "retry_at": row.retry_at,
                    "error": row.error if refused else row.conflict,
                }  # fmt: skip
                text = json.dumps(entry, ensure_ascii=False, default=str)
                print("[" if listed + refusals + conflicts == 0 else ",", text)
            elif refused:
                head = f"{name} {row.source_id} [write-back] attempts {row.attempts}"
                print(f"{head}, {_next_try(row)}: {row.error}")
            else:
                print(f"{name} {row.source_id} [conflict: the source won]: {row.conflict}")
            refusals += refused
            conflicts += not refused
    return refusals, conflicts


def _next_try(item: Any) -> str:
    if item.retry_at is None:
        return "not retried (no record to map)"
    return f"next try {item.retry_at:%Y-%m-%dT%H:%M:%SZ}"


def _failed_json(item: Any) -> dict[str, Any]:
    return {
        "source_id": item.source_id,
        "uid": item.uid,
        "stage": item.stage,
        "field": item.field,
        "error": item.error,
        "attempts": item.attempts,
        "first_seen": item.first_seen,
        "last_seen": item.last_seen,
        "retry_at": item.retry_at,
    }


def _connectors(_args: argparse.Namespace) -> int:
    from connectors.registry import available, broken

    for kind, cls in available().items():
        print(f"{kind:12} {cls.summary}")
    for kind, reason in broken().items():
        print(f"{kind:12} BROKEN: {reason}")
    return EXIT_OK


def _db(args: argparse.Namespace) -> int:
    config = _load(args)
    store = StateStore.open(config.state.url, upgrade=True)
    store.close()
    print("state database upgraded to the latest schema")
    return EXIT_OK


def _config(_args: argparse.Namespace) -> int:
    """`config schema`: the JSON Schema of sync.toml, with every installed connector kind."""
    from sync.shell.schema import schema_text  # imports every connector: only this command

    sys.stdout.write(schema_text())
    return EXIT_OK
