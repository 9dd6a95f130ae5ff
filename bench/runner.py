"""Running the real sync: a config file per scenario, and `python -m sync run --once --json`.

Owns the TOML config the bench writes and the one place a `run --once`
process is started and measured, with the emulator's traffic counted around
it. A scenario is one state database and its configs (one for `run --once`,
one for the daemon); the runs of a figure that build on each other
(backfill, nothing changed, 1% changed) share one.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.emulator import TOKEN, EmulatorProcess, Traffic
from bench.process import PYTHON, BenchError, Measured, measure
from bench.sources import Source

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
DAEMON_INTERVAL = "1s"
"""The daemon's schedule in `Scenario.daemon_config`: the shortest interval allowed."""


@dataclass(frozen=True)
class Scenario:
    """A directory holding one config, one state database and the runs' output."""

    directory: Path
    config: Path
    connector: str
    source: Source
    state_url: str
    daemon_config: Path
    """The same sync as a daemon: every `DAEMON_INTERVAL`, JSON logs at info, no endpoint."""


@dataclass(frozen=True)
class SyncRun:
    """One `run --once`: what the process cost, what it reported, what the emulator saw."""

    measured: Measured
    summary: dict[str, Any]
    """The connector's entry of the `--json` output (pulled, pushed, requests, ...)."""
    traffic: Traffic
    """The requests the emulator answered during the run."""
    emulator_cpu_s: float
    """CPU seconds the emulator spent during the run: its share of the wall time."""

    def count(self, key: str) -> int:
        """A count from the summary: `pulled`, `pushed`, `unchanged`, `skipped_deleted`, …"""
        value: int = self.summary[key]
        return value

    def as_json(self) -> dict[str, Any]:
        """The run's figures for the JSON report."""
        return {
            "wall_s": self.measured.wall_s,
            "cpu_s": self.measured.cpu_s,
            "peak_rss_mib": self.measured.peak_rss_mib,
            **{
                key: self.summary[key]
                for key in (
                    "pulled",
                    "pushed",
                    "unchanged",
                    "skipped_deleted",
                    "failed",
                    "requests",
                    "duration_s",
                )
            },
            "emulator_requests": self.traffic.api_requests,
            "emulator_429s": self.traffic.with_status(429),
            "emulator_cpu_s": self.emulator_cpu_s,
        }


def prepare_scenario(
    directory: Path,
    source: Source,
    fragment_url: str,
    batch_size: int,
    requests_per_minute: int,
    state_url: str | None = None,
) -> Scenario:
    """A fresh `directory` (any earlier state removed) with a config syncing `source`.

    The sync keeps its state at `state_url`, by default a SQLite file in `directory`.
    """
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    connector = f"bench-{source.kind}"
    state = state_url or f"sqlite:///{directory / 'state.db'}"
    sections: dict[str, dict[str, Any]] = {
        "fragment": {
            "url": fragment_url,
            "token": TOKEN,
            "batch_size": batch_size,
            "requests_per_minute": requests_per_minute,
        },
        "state": {"url": state},
        "logging": {"level": "warning"},
        f"connectors.{connector}": {
            "kind": source.kind,
            **source.options,
            "mapping": source.mapping,
        },
    }
    config = directory / "sync.toml"
    config.write_text(toml_document(sections), encoding="utf-8")
    # The daemon's passes are read from its `run_finished` lines; its HTTP endpoint
    # would only take a port another bench or daemon may hold.
    daemon_sections = {
        **sections,
        "logging": {"level": "info", "format": "json"},
        "daemon": {"http_port": 0},
        f"connectors.{connector}": {
            **sections[f"connectors.{connector}"],
            "schedule": {"interval": DAEMON_INTERVAL},
        },
    }
    daemon_config = directory / "daemon.toml"
    daemon_config.write_text(toml_document(daemon_sections), encoding="utf-8")
    return Scenario(directory, config, connector, source, state, daemon_config)


def run_sync(
    scenario: Scenario, emulator: EmulatorProcess, label: str, *, full: bool = False
) -> SyncRun:
    """Run one pass of the scenario's connector and measure it.

    `label` names the output files in the scenario's directory. Raises
    `BenchError` when the pass fails.
    """
    argv = [PYTHON, "-m", "sync", "run", "--once", "--json", "--config", str(scenario.config)]
    if full:
        argv.append("--full")
    before, cpu_before = emulator.traffic(), emulator.cpu_s()
    measured = measure(argv, cwd=scenario.directory, logs=scenario.directory / label)
    emulator_cpu = emulator.cpu_s() - cpu_before
    traffic = emulator.traffic().since(before)
    summary = json.loads(measured.stdout)["connectors"][0]
    if not summary["ok"]:
        raise BenchError(f"{label}: the sync reported a failure: {summary.get('error')}")
    return SyncRun(measured, summary, traffic, emulator_cpu)


def toml_document(sections: dict[str, dict[str, Any]]) -> str:
    """TOML text of `sections`, each a table of plain values and inline tables."""
    lines: list[str] = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{_toml_key(key)} = {_toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    """A TOML value: JSON's string escapes are TOML's basic-string escapes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        pairs = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")
