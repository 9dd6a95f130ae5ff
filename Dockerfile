# fragment-sync daemon image.
# Build: docker build -t fragment-sync .
# Run:   docker run -v $PWD/sync.toml:/etc/fragment-sync/sync.toml:ro \
#          -e SYNC_FRAGMENT__TOKEN=... fragment-sync

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY connectors ./connectors
RUN python -m pip install --no-cache-dir --upgrade pip build \
 && python -m build --wheel --outdir /wheels \
 && python -m pip wheel --no-cache-dir --wheel-dir /wheels "psycopg[binary]>=3.1,<4"

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 sync
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER sync
WORKDIR /home/sync
ENV SYNC_CONFIG=/etc/fragment-sync/sync.toml \
    PYTHONUNBUFFERED=1
CMD ["fragment-sync", "run"]
