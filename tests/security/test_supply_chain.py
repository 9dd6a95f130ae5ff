"""The image and CI install what the lock says, checked by hash, and CI audits the lock.

`requirements.lock` pins every runtime dependency (and the `postgres` extra the image
installs) with the hashes of its files; the Dockerfile installs it with
`--require-hashes`, then the project's wheel alone; the build context holds only
what the Dockerfile copies. `.ci/audit` fails on any known vulnerability of a
locked release: here it is pointed at a fake OSV service on loopback, since this
machine reaches no vulnerability database.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from fakes import FakeApi, Reply, Request

ROOT = Path(__file__).parents[2]
LOCK = ROOT / "requirements.lock"
_PINNED = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, str]:
    """The locked releases, by canonical name; each must carry hashes."""
    releases: dict[str, str] = {}
    for entry in _entries(LOCK.read_text()):
        match = _PINNED.match(entry)
        assert match, entry
        assert "--hash=sha256:" in entry, f"{match.group(1)} is locked without a hash"
        releases[_canonical(match.group(1))] = match.group(2)
    return releases


def _entries(text: str) -> list[str]:
    """The requirement lines of a pip-compile style file, each with its continuation lines."""
    entries: list[str] = []
    for line in text.splitlines():
        if not line or line.lstrip().startswith("#"):
            continue
        if line.startswith(" ") and entries:
            entries[-1] += line
        else:
            entries.append(line)
    return entries


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["postgres"]]
    names = {_canonical(re.split(r"[\[<>=!~; ]", requirement)[0]) for requirement in wanted}

    locked = _locked()

    assert names <= set(locked), names - set(locked)
    assert "psycopg-binary" in locked  # the extra of psycopg[binary]


def test_the_lock_says_the_command_the_docs_give_to_make_it_again() -> None:
    header = LOCK.read_text().splitlines()[1].removeprefix("#").strip()

    assert header.startswith("uv pip compile pyproject.toml")
    assert "--generate-hashes" in header
    assert header in (ROOT / "docs" / "development.md").read_text()


def test_the_image_installs_the_lock_by_hash_then_the_wheel_alone() -> None:
    steps = " ".join((ROOT / "Dockerfile").read_text().replace("\\\n", " ").split())

    assert "pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock" in steps
    assert "pip install --no-cache-dir --no-deps /wheels/fragment_sync-" in steps
    assert "pip wheel --no-cache-dir --no-deps" in steps  # nothing unlocked is fetched


def test_the_build_context_holds_only_what_the_dockerfile_copies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {
        source.rstrip("/")
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    }
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    assert rules[0] == "*"  # everything is left out, then what is needed let back in
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == copied
    assert not allowed & {".venv", ".sync", ".git", "tests", "sync.toml"}


def test_the_image_copies_every_package_the_project_installs() -> None:
    """A package the wheel needs but the Dockerfile leaves out breaks only the image."""
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = include["packages"]["find"]["include"]
    packages = {
        folder.name
        for folder in ROOT.iterdir()
        if (folder / "__init__.py").is_file()
        and any(fnmatch.fnmatchcase(folder.name, pattern) for pattern in patterns)
    }
    copied = {
        line.split()[1].rstrip("/")
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
    }

    assert {"sync", "connectors", "sync_http"} <= packages
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"


class FakeOsv(FakeApi):
    """OSV's query API (POST /v1/query), knowing one vulnerability of one release."""

    def __init__(self, name: str, version: str) -> None:
        super().__init__()
        self.vulnerable = (name, version)

    def route(self, request: Request) -> Reply:
        query = json.loads(request.body)
        if (query["package"]["name"], query["version"]) != self.vulnerable:
            return Reply(200, {})
        vuln: dict[str, Any] = {
            "id": "GHSA-fake-0001-test",
            "summary": "A flaw planted by the test",
            "affected": [
                {
                    "package": {"name": self.vulnerable[0], "ecosystem": "PyPI"},
                    "ranges": [
                        {
                            "type": "ECOSYSTEM",
                            "events": [{"introduced": "0"}, {"fixed": "999.0"}],
                        }
                    ],
                }
            ],
        }
        return Reply(200, {"vulns": [vuln]})


def _audit(osv: FakeOsv) -> subprocess.CompletedProcess[str]:
    # The script's `python` is this interpreter, as in CI's activated venv, even when the
    # suite runs as `.venv/bin/python -m pytest` with another `python` first on PATH.
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PIP_AUDIT_ARGS": f"--vulnerability-service osv --osv-url {osv.base_url}/v1/query",
    }
    return subprocess.run(
        ["bash", str(ROOT / ".ci" / "audit")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_the_audit_fails_on_a_known_vulnerability_of_a_locked_release() -> None:
    with FakeOsv("httpx", _locked()["httpx"]) as osv:
        done = _audit(osv)

    assert done.returncode == 1, done.stdout + done.stderr
    assert f"httpx {_locked()['httpx']}: GHSA-fake-0001-test (fixed in 999.0)" in done.stdout
    assert len(osv.requests) >= len(_locked()) - 1  # tzdata is for Windows only


def test_the_audit_passes_when_no_locked_release_is_known_to_be_vulnerable() -> None:
    with FakeOsv("httpx", "0.0.1") as osv:
        done = _audit(osv)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "no known vulnerabilities in" in done.stdout
    assert "not audited" not in done.stderr
