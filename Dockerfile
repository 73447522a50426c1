# Chain STS production image: Granian serving the STS (sts serve), configured by STS_* variables.
#
#   docker build -t chain-sts .
#   docker run --rm -v sts-keys:/app/keys --entrypoint sts chain-sts keys generate
#   docker run -p 8000:8000 -v sts-keys:/app/keys \
#     -e STS_ISSUER=https://sts.example.com \
#     -e STS_DATABASE_URL=postgresql+psycopg://sts:PASSWORD@db:5432/sts chain-sts
#
# On start the container migrates the database (sts db upgrade) and then runs sts serve:
# STS_HTTP_WORKERS processes (two per CPU by default) whose event loops read each request in full before
# it is run, so slow or idle clients hold no worker.
# Production refuses to boot without an https STS_ISSUER and existing keys.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STS_ENV=production \
    STS_KEYS_DIR=/app/keys

RUN groupadd --system --gid 10001 sts \
    && useradd --system --uid 10001 --gid sts --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin sts

WORKDIR /app
# The service SDK first, from this repository: the server depends on chain-sts-client, which
# pip must then find installed rather than look for on an index.
COPY clients/python ./clients/python
RUN pip install ./clients/python
COPY pyproject.toml README.md alembic.ini ./
COPY sts ./sts
COPY migrations ./migrations
COPY config ./config
RUN pip install -e . \
    && mkdir -p /app/keys /app/var \
    && chown sts:sts /app/keys /app/var \
    && chmod 0700 /app/keys

USER sts
# Signing keys and the credential hashing key: shared by every replica, never baked in.
VOLUME ["/app/keys"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# exec: the server replaces the shell as PID 1 and receives the stop signal itself.
ENTRYPOINT ["/bin/sh", "-c", "sts db upgrade && exec sts serve --host 0.0.0.0 --port 8000"]
