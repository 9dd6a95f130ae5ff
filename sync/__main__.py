"""`python -m sync` and the `fragment-sync` script: the CLI, started and ended collector-light.

Both entry points come through `main` here, so the Docker image's `fragment-sync run`
starts exactly like `python -m sync run`.
"""

import gc
import sys


def main() -> int:
    """Import and run the CLI; returns its exit code."""
    # Importing builds what lives until exit (modules, classes): the cyclic collector
    # finds no garbage there, and walking it cost ~40 ms of a 0.4 s `run --once`.
    # Frozen, it is never walked again.
    gc.disable()
    try:
        from sync.shell.cli import main as cli_main
    finally:
        gc.freeze()
        gc.enable()
    # The young-generation threshold stays at its default. Each request to Fragment leaves
    # a reference cycle (httpx's response and its stream) holding the response body, some
    # 700 KB for a batch of 500; at 20,000 a backfill's peak RSS grew with its size (80 MiB
    # at 30,000 tickets, 313 MiB at 100,000), for 0.2 s less collector time.
    try:
        return cli_main()
    finally:
        # Exiting would walk every object once more (~50 ms); what is left needs no
        # collector: the state store and connections are closed, atexit handlers still run.
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
