"""The fenced blocks of the documentation, and what each one's marker asks for.

Every block in README.md and docs/**/*.md is checked by tests/docs/test_snippets.py.
A marker is an HTML comment on the line right before a fence, invisible on GitHub
and on the site:

- `<!-- run -->`: a sh block run with bash in a directory shared by the page's blocks;
- `<!-- run: background, wait-for HOST:PORT -->`: started, and waited for until PORT
  accepts connections; sent SIGTERM when the page is done;
- `<!-- file: NAME -->`: the block is written to NAME in that directory;
- `<!-- no-run: REASON -->`: a sh block that can't run here (a real Zendesk, docker);
- `<!-- not-sync-toml -->`: a toml block that is not a sync.toml (a pyproject.toml).

Every toml block is loaded as a sync.toml unless marked so; every sh block needs a
marker. `python tests/doc_blocks.py setup` prints the README's first command,
which `.ci/run` runs on a clean clone.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
MARKER = re.compile(
    r"^\s*<!-- (?P<verb>run|file|no-run|not-sync-toml)(?::\s*(?P<argument>.*?))? -->\s*$"
)
WAIT_FOR = re.compile(r"^background, wait-for (?P<host>[\w.-]+):(?P<port>\d+)$")
SHELLS = {"sh", "bash", "shell"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    """The fence's line number (1-based)."""
    lang: str
    text: str
    verb: str | None = None
    argument: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def wait_for(self) -> tuple[str, int] | None:
        """(host, port) of a background block, else None."""
        match = WAIT_FOR.match(self.argument or "")
        return (match["host"], int(match["port"])) if match else None


def documents() -> list[Path]:
    """README.md and every page of the site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file, in order, with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        marker = MARKER.match(lines[index - 1]) if index > 0 else None
        found.append(
            Block(
                path=path,
                line=index + 1,
                lang=opening["lang"].lower(),
                text="\n".join(body) + "\n",
                verb=marker["verb"] if marker else None,
                argument=marker["argument"] if marker else None,
            )
        )
        index = end + 1
    return found


def readme_setup() -> str:
    """The README's first sh block: the command that installs the project and runs the demo."""
    return next(block.text for block in blocks(ROOT / "README.md") if block.lang in SHELLS)


if __name__ == "__main__":
    if sys.argv[1:] != ["setup"]:
        sys.exit("usage: python tests/doc_blocks.py setup")
    print(readme_setup(), end="")
