"""The documentation's commands and config snippets run, so the docs can't drift from the code.

What each fenced block's marker asks for is in tests/doc_blocks.py. A page's
runnable blocks run in order in one directory, as a reader would type them into one
terminal (what a block exports stays set for the next), with
this virtual environment's `python` first on PATH; pages run one after another on
one worker (they start the emulator on its documented port, 8400).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from doc_blocks import ROOT, SHELLS, Block, blocks, documents
from sync.config import load_config
from sync.cron import cron_trigger

ALL_BLOCKS = [block for path in documents() for block in blocks(path)]
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_]\w*)(?P<default>:-[^}]*)?\}")
COMMAND_TIMEOUT = 180
"""Seconds a single block may take (the demo's backfill takes a few)."""


def _where(block: Block) -> str:
    return block.where


def test_the_docs_have_blocks_to_check() -> None:
    # A parser that found nothing would make every test below pass vacuously.
    assert sum(block.lang == "toml" for block in ALL_BLOCKS) >= 5
    assert sum(block.verb == "run" for block in ALL_BLOCKS) >= 3


def test_every_shell_block_says_whether_it_runs() -> None:
    unmarked = [
        block.where
        for block in ALL_BLOCKS
        if block.lang in SHELLS and block.verb not in {"run", "no-run", "file"}
    ]
    assert not unmarked, (
        "sh blocks need <!-- run -->, <!-- run: background, wait-for HOST:PORT --> or "
        f"<!-- no-run: REASON --> on the line before the fence: {unmarked}"
    )


def test_markers_are_well_formed() -> None:
    wrong = [
        f"{block.where}: {block.verb}: {block.argument!r}"
        for block in ALL_BLOCKS
        if (block.verb == "run" and block.argument is not None and block.wait_for is None)
        or (block.verb in {"no-run", "file"} and not block.argument)
        or (block.verb == "not-sync-toml" and block.lang != "toml")
    ]
    assert not wrong


@pytest.mark.parametrize(
    "block", [b for b in ALL_BLOCKS if b.lang == "toml" and b.verb != "not-sync-toml"], ids=_where
)
def test_toml_block_is_a_valid_config(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("SYNC_"):
            monkeypatch.delenv(name)
    for match in VARIABLE.finditer(block.text):
        if not match["default"]:
            monkeypatch.setenv(match["name"], _placeholder(match["name"]))
    path = tmp_path / "sync.toml"
    path.write_text(block.text, encoding="utf-8")
    load_config(path, import_hooks=False)  # raises ConfigError naming the key


def _placeholder(variable: str) -> str:
    """A value for `${VARIABLE}` of the shape the key expects."""
    if variable.endswith(("URL", "_URI", "_HOST")):
        return "https://example.com"
    return "placeholder-0123456789abcdef"


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang == "python"], ids=_where)
def test_python_block_compiles(block: Block) -> None:
    compile(block.text, block.where, "exec")


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang == "yaml"], ids=_where)
def test_yaml_block_parses(block: Block) -> None:
    # Prometheus rules, Kubernetes specs: what a reader pastes must at least be YAML.
    assert yaml.safe_load(block.text) is not None


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang == "cron"], ids=_where)
def test_cron_block_is_a_line_crontab_reads(block: Block) -> None:
    for line in block.text.splitlines():
        if line.strip() and not line.startswith("#"):
            cron_trigger(" ".join(line.split()[:5]))  # raises ValueError saying what is wrong


RUN_PAGES = sorted({block.path for block in ALL_BLOCKS if block.verb == "run"})


@pytest.mark.xdist_group("docs_pages")
@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda path: str(path.relative_to(ROOT)))
def test_page_runs(page: Path, tmp_path: Path) -> None:
    environment = _reader_environment()
    with _background_processes() as started:
        for block in blocks(page):
            if block.verb == "file":
                (tmp_path / block.argument).write_text(block.text, encoding="utf-8")  # type: ignore[operator]
            elif block.verb == "run" and block.wait_for:
                started.append(_start(block, tmp_path, environment))
            elif block.verb == "run":
                _run(block, tmp_path, environment)
        for block, process in started:
            log = tmp_path / f".background-{block.line}.log"
            assert process.poll() is None, f"{block.where} exited early:\n{log.read_text()}"


def _reader_environment() -> dict[str, str]:
    """The environment of a reader who has activated the project's virtual environment."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SYNC_", "FRAGMENT_", "PYTEST_"))
    }
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    return environment


def _run(block: Block, folder: Path, environment: dict[str, str]) -> None:
    """Run a block; what it exports stays for the page's next blocks, as in a terminal."""
    exported = folder / ".exported-environment"
    script = f"trap 'env -0 > {exported}' EXIT\n{block.text}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"{block.where} exited {done.returncode}:\n{block.text}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    environment.clear()
    for entry in exported.read_text().split("\0"):
        if "=" in entry:
            name, value = entry.split("=", 1)
            environment[name] = value
    exported.unlink()


def _start(
    block: Block, folder: Path, environment: dict[str, str]
) -> tuple[Block, subprocess.Popen[bytes]]:
    host, port = block.wait_for  # type: ignore[misc]
    assert not _accepts(host, port), f"{block.where}: {host}:{port} is already taken"
    log = folder / f".background-{block.line}.log"
    with log.open("w") as output:  # a file, not a pipe: a chatty daemon can't fill it and stall
        process = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", block.text],
            cwd=folder,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while not _accepts(host, port):
        if process.poll() is not None:
            pytest.fail(f"{block.where} exited {process.returncode}:\n{log.read_text()}")
        assert time.monotonic() < deadline, f"{block.where}: nothing on {host}:{port} after 30 s"
        time.sleep(0.1)
    return block, process


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@contextmanager
def _background_processes() -> Iterator[list[tuple[Block, subprocess.Popen[bytes]]]]:
    """The page's background commands; each gets SIGTERM, then SIGKILL, when the page ends."""
    started: list[tuple[Block, subprocess.Popen[bytes]]] = []
    try:
        yield started
    finally:
        for _block, process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _block, process in started:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
