"""The HTTP toolkit the source connectors and the Fragment client both send through.

`session` (one connection, the request loop), `bounded` (reads within a size cap and a
deadline), `auth` (credentials as httpx auth), `policy` (answers to actions, as tables),
`ratelimit` (pacing, waits, backoff), `redaction` (no secret leaves as text), `clock`
(this machine's clock, read in one place). Nothing here knows of sources, tickets or
Fragment: it imports neither `connectors` nor `sync`. Importing this package loads
nothing: `sync.logs` takes `redaction` at start-up, which must not load httpx.
"""
