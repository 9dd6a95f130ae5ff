"""The benchmark harness (issues 6 and 17): `python -m bench` measures the real sync and emulator.

Owns generating synthetic ticket sources, running `python -m sync` and the
emulator as separate processes, measuring them, and reporting each figure
next to its target. Touches nothing in `sync/` or `connectors/`: it drives
them only through their command line, their config file and (for the naive
client and the floor) small scripts of its own. These are benchmarks, not
tests: the smoke test checks the harness's counts, never a time.

    python -m bench                    # N = 100,000, both sources: a few minutes
    python -m bench --quick --json     # every figure, small: well under a minute
    python -m bench --million --workdir .bench   # adds a 1,000,000-ticket backfill
"""
