#!/bin/sh
# Chain STS container start: wait for the database and migrate it, check the keys, then run
# the server given as the command (sts serve by default; gunicorn -c config/gunicorn.conf.py
# works too). Each step that fails says why in one line and stops the container.
#
#   DB_WAIT_SECONDS            how long to wait for the database (default 60)
#   PROMETHEUS_MULTIPROC_DIR   emptied here, so a restart starts its counters afresh
set -eu

sts db upgrade --wait "${DB_WAIT_SECONDS:-60}"
sts keys check
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -type f -delete
fi
# exec: the server replaces the shell as PID 1 and receives the stop signal itself.
exec "$@"
