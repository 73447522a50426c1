# Chain STS production image: Granian serving the STS (sts serve), configured by STS_* variables.
#
#   docker build -t chain-sts .
#   docker run --rm -v sts-keys:/app/keys --entrypoint sts chain-sts keys generate
#   docker run -p 8000:8000 -v sts-keys:/app/keys \
#     -e STS_ISSUER=https://sts.example.com \
#     -e STS_DATABASE_URL=postgresql+psycopg://sts:PASSWORD@db:5432/sts chain-sts
#
# On start the container waits for the database (up to DB_WAIT_SECONDS, default 60) and
# migrates it, checks the keys, and then runs the command: sts serve (Granian), whose
# STS_HTTP_WORKERS processes read each request in full before it is run, so slow or idle
# clients hold no worker. Production refuses to boot without an https STS_ISSUER and existing
# keys, in one line.

# -- build: wheels of the SDK, the server and every dependency ------------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The service SDK is built from this repository beside the server, which depends on it.
COPY clients/python ./clients/python
COPY pyproject.toml README.md ./
COPY sts ./sts
COPY sts_demo ./sts_demo
RUN pip wheel --wheel-dir /wheels ./clients/python .

# -- run: the wheels installed, no compiler, no sources, not root ----------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STS_ENV=production \
    STS_KEYS_DIR=/app/keys \
    PROMETHEUS_MULTIPROC_DIR=/app/var/metrics

RUN groupadd --system --gid 10001 sts \
    && useradd --system --uid 10001 --gid sts --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin sts

WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels chain-sts \
    && rm -rf /wheels
# Migrations and the server's configuration live beside the installed package.
COPY alembic.ini ./
COPY migrations ./migrations
COPY config ./config
RUN chmod 0755 config/docker-entrypoint.sh \
    && mkdir -p /app/keys /app/var/metrics \
    && chown sts:sts /app/keys /app/var /app/var/metrics \
    && chmod 0700 /app/keys

USER sts
# Signing keys and the credential hashing key: shared by every replica, never baked in.
VOLUME ["/app/keys"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["/app/config/docker-entrypoint.sh"]
CMD ["sts", "serve", "--host", "0.0.0.0", "--port", "8000"]
