"""A faithful local emulator of Fragment's v1 task API, with fault injection.

fragment-sync cannot reach Fragment in development and CI, so this package
serves the API as documented in fragment-api.md (bearer auth, single and batch
task writes, paginated listing, FastAPI-style errors) from SQLite, and can
misbehave on demand (rate limits, 5xx, hangs, dropped connections, lost
answers) so the client's retry logic meets every failure before production does.

Start at `Emulator` (in-process, for tests) or `serve` (blocking, for the CLI);
`Faults` holds the switches. Tests, demos and the CLI use this package; the
sync engine only ever talks to it over HTTP, as it would to Fragment.
"""

from fragment_emulator.faults import Faults
from fragment_emulator.server import DEFAULT_TOKEN, Emulator, serve

__all__ = ["DEFAULT_TOKEN", "Emulator", "Faults", "serve"]
