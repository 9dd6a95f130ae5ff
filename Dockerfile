# fragment-sync: the daemon image.
#   docker build -t fragment-sync .
#   openssl rand -hex 32 > secrets/http_token   # the status page's and /metrics' token
#   docker run --stop-timeout 40 -v $PWD/sync.toml:/etc/fragment-sync/sync.toml:ro \
#     -v $PWD/secrets:/run/secrets:ro -v fragment-sync-state:/var/lib/fragment-sync \
#     -e SYNC_STATE__URL=sqlite:////var/lib/fragment-sync/state.db \
#     -e SYNC_FRAGMENT__TOKEN_FILE=/run/secrets/fragment_token \
#     -e SYNC_DAEMON__HTTP_TOKEN_FILE=/run/secrets/http_token -p 9464:9464 fragment-sync
# --stop-timeout: longer than daemon.shutdown_timeout (30 s; Docker waits 10 s by default).
# The volume keeps a SQLite state across re-creations (or use PostgreSQL); docs/operations/container.md.
# It listens on 0.0.0.0, so it won't start without the token (exit 2, naming
# daemon.http_token); /healthz and /readyz stay open for the HEALTHCHECK and orchestrators.
# .ci/run performs the same wheel build and installs in a fresh virtual environment.
# The dependencies come from requirements.lock, pinned with hashes (docs/development.md).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY connectors ./connectors
COPY sync_demo ./sync_demo
COPY sync_http ./sync_http
COPY fragment_emulator ./fragment_emulator
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# /var/lib/fragment-sync: where a SQLite state survives the container, on a volume; the
# directory is the user's, so a new named volume mounted there is too.
RUN useradd --create-home --uid 10001 sync \
 && install -d -o sync -g sync -m 0700 /var/lib/fragment-sync
COPY requirements.lock /tmp/requirements.lock
COPY --from=build /wheels /wheels
# Every dependency as locked, each file checked against its hash; then the project alone.
RUN python -m pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
 && python -m pip install --no-cache-dir --no-deps /wheels/fragment_sync-*.whl \
 && python -m pip check \
 && rm -rf /wheels /tmp/requirements.lock
USER sync
WORKDIR /home/sync
ENV SYNC_CONFIG=/etc/fragment-sync/sync.toml \
    SYNC_DAEMON__HTTP_HOST=0.0.0.0 \
    SYNC_DAEMON__HTTP_PORT=9464 \
    PYTHONUNBUFFERED=1
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
# SIGTERM lets passes in flight checkpoint; give it longer than daemon.shutdown_timeout.
STOPSIGNAL SIGTERM
CMD ["fragment-sync", "run"]
