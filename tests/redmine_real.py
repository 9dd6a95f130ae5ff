"""The real Redmine 5 on loopback (`../shared/real-servers/redmine/`), for the tests that use it.

`real_redmine` is a session fixture: it starts the server with `setup.sh` when
`REDMINE_URL` doesn't answer (root and apt needed; without them the tests skip,
and on CI they fail). A test module that uses it imports the fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


@dataclass(frozen=True)
class RealRedmine:
    url: str
    api_key: str
    scripts: Path
    """The folder of setup.sh and seed.py."""

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"X-Redmine-API-Key": self.api_key}, timeout=30
        )

    def new_project(self, purpose: str, parent: str | None = None) -> str:
        """A fresh project (a subproject of `parent`), with the trackers and issue custom fields
        there are; its identifier."""
        identifier = f"fsync-{purpose}-{uuid.uuid4().hex[:10]}"
        with self.client() as api:
            trackers = [t["id"] for t in ok(api.get("/trackers.json"))["trackers"]]
            fields = [
                f["id"]
                for f in ok(api.get("/custom_fields.json"))["custom_fields"]
                if f.get("customized_type") == "issue"
            ]
            project = {
                "name": identifier,
                "identifier": identifier,
                "is_public": False,
                "tracker_ids": trackers,
                "issue_custom_field_ids": fields,
                "enabled_module_names": ["issue_tracking"],
            }
            if parent is not None:
                project["parent_id"] = self.project_id(parent)
            ok(api.post("/projects.json", json={"project": project}))
        return identifier

    def project_id(self, identifier: str) -> int:
        """The numeric id of the project `identifier`."""
        with self.client() as api:
            number: int = ok(api.get(f"/projects/{identifier}.json"))["project"]["id"]
        return number

    def seed(self, project: str, *arguments: str) -> dict[str, Any]:
        """Run `seed.py` on `project`; its JSON answer (`ids`, and `since` for touch)."""
        environment = {
            **os.environ,
            "REDMINE_URL": self.url,
            "REDMINE_API_KEY": self.api_key,
            "REDMINE_PROJECT": project,
        }
        done = subprocess.run(
            [sys.executable, str(self.scripts / "seed.py"), *arguments, "--json"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def issues(self, project: str) -> dict[str, dict[str, Any]]:
        """Every issue of `project`, by id, as the API lists it."""
        found: dict[str, dict[str, Any]] = {}
        with self.client() as api:
            while True:
                query = {"project_id": project, "status_id": "*", "sort": "id", "limit": 100}
                page = ok(api.get("/issues.json", params={**query, "offset": len(found)}))
                found.update({str(issue["id"]): issue for issue in page["issues"]})
                if not page["issues"] or len(found) >= page["total_count"]:
                    return found


def ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201, 204), (response.status_code, response.text[:300])
    return response.json() if response.content else None


def _scripts() -> Path | None:
    """The folder of setup.sh: `REDMINE_REAL_SERVER`, else `shared/` beside the project."""
    configured = os.environ.get("REDMINE_REAL_SERVER")
    if configured:
        return Path(configured)
    project = Path(__file__).resolve().parents[1]
    for base in (project.parent, project.parent.parent):  # /work/main, /work/wt/<name>
        folder = base / "shared" / "real-servers" / "redmine"
        if (folder / "setup.sh").is_file():
            return folder
    return None


def _env_file() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(os.environ.get("REDMINE_RUN_DIR") or Path(state) / "redmine-real") / "env"


def redmine_settings() -> dict[str, str]:
    """REDMINE_* from the environment, else from the env file setup.sh writes."""
    found = {k: v for k, v in os.environ.items() if k.startswith("REDMINE_")}
    path = _env_file()
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.removeprefix("export ").strip()
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                found.setdefault(key, value.strip("'\""))
    return found


def _answers(settings: dict[str, str]) -> bool:
    url, key = settings.get("REDMINE_URL"), settings.get("REDMINE_API_KEY")
    if not url or not key:
        return False
    try:
        reply = httpx.get(
            f"{url}/users/current.json", headers={"X-Redmine-API-Key": key}, timeout=5
        )
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the real Redmine is needed on CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_redmine() -> RealRedmine:
    """The real Redmine on loopback, started by setup.sh if it isn't up."""
    scripts = _scripts()
    settings = redmine_settings()
    if not _answers(settings):
        if scripts is None:
            _unavailable("no real-servers/redmine/setup.sh found (set REDMINE_REAL_SERVER)")
        assert scripts is not None
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            _unavailable("setup.sh needs root and apt-get to start the real Redmine")
        done = subprocess.run(
            ["bash", str(scripts / "setup.sh")],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        settings = redmine_settings()
        assert _answers(settings), f"setup.sh ran but Redmine doesn't answer: {settings}"
    assert scripts is not None, "Redmine answers, but seed.py is not found: set REDMINE_REAL_SERVER"
    return RealRedmine(settings["REDMINE_URL"], settings["REDMINE_API_KEY"], scripts)
