"""fragment-sync's engine: configuration, mapping, state, the Fragment client, the run loop.

The path of a ticket: `connectors` → `sync.pull` → `sync.mapping` → `sync.diff` →
`sync.ship` → `sync.fragment` → `sync.checkpoint` (into `sync.state`), tied by
`sync.stream` and the pass orchestrator `sync.run`. `sync.shell`
(the CLI, the daemon, the web page, metrics, logs) sits on top, and nothing here
imports it; `fragment_emulator` stands in for Fragment.
"""

__version__ = "0.1.0"
