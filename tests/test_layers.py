"""The import layers of pyproject.toml's `[tool.importlinter]` hold, and can break.

The layers draw a ticket's path (README, Development); a module that imports
upwards, or two that import each other, fail here before review.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command, "lint-imports is not installed (pip install -e '.[test]')"
    chosen = [argument for contract in contracts for argument in ("--contract", contract)]
    return subprocess.run(
        [command, "--no-cache", *chosen], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_every_layer_contract_is_kept() -> None:
    result = lint_imports(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("sync/diff.py", "import sync.shell.metrics", "engine-layers"),
        ("sync/mapping.py", "import sync.pull", "engine-layers"),
        ("sync/lease.py", "import sync.summary", "engine-layers"),  # siblings of one layer
        ("sync_http/clock.py", "import connectors.base", "layers"),
        ("connectors/base.py", "import sync.errors", "layers"),
        ("sync/run.py", "import fragment_emulator", "engine-apart"),
        ("fragment_emulator/users.py", "import sync.mapping", "fakes-apart"),
        ("sync/state/text.py", "import sync.state.store", "acyclic"),
    ],
)
def test_an_upward_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = tmp_path / "tree"
    for package in ("sync", "connectors", "sync_http", "fragment_emulator", "sync_demo"):
        shutil.copytree(
            ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    assert lint_imports(tree, contract).returncode == 0, "kept before the import"
    with (tree / module).open("a") as file:
        file.write(f"\n{line}  # an upward import\n")

    result = lint_imports(tree, contract)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout
