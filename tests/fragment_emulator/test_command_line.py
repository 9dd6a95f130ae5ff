"""`python -m sync emulator` as a reader of the docs starts it: one line when the port is taken."""

from __future__ import annotations

import subprocess
import sys

from fragment_emulator import Emulator


def test_a_taken_port_is_one_line_naming_it_and_exit_2(emulator: Emulator) -> None:
    # The getting-started pages each start one on 8400; a second start used to print
    # a 20-line traceback ending in "Address already in use".
    port = emulator.base_url.split(":")[2].split("/")[0]

    done = subprocess.run(
        [sys.executable, "-m", "sync", "emulator", "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"python -m sync emulator: 127.0.0.1:{port} is in use, by another emulator perhaps: "
        "stop it, or pass --port"
    ]
