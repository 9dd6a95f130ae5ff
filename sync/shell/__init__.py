"""The shell around the engine: what starts passes and shows what they did.

`cli` (the `fragment-sync` command), `daemon` (connectors on their schedules),
`web` (probes, `/metrics` and the status page, from `templates/`), `metrics`,
`logs`, `progress`, `status` (the rows `status`, the page and the metrics
show) and `demo` (the built-in demo's setup).

The engine (`sync` outside this package) never imports it: the shell plugs in
through the engine's hooks (`sync.run.RunObserver` in `sync.run.RUN_OBSERVERS`,
`sync.run.ProgressReporter` in `RunOptions.progress`,
`sync_http.session.HttpObserver`), and sets up logging before a pass starts.
"""
