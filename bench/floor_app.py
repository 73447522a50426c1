"""The floor: a bare Flask endpoint that verifies one ES256 JWT and signs one.

What any Python token service must at least spend per request on this machine; Chain STS's
exchange throughput is reported as a ratio of it. Run under gunicorn by bench/run.py with
``BENCH_FLOOR_KEY`` naming a PEM private key file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from flask import Flask, Response, json, request

_key = serialization.load_pem_private_key(
    Path(os.environ["BENCH_FLOOR_KEY"]).read_bytes(), password=None
)
_public = _key.public_key()
app = Flask(__name__)


@app.post("/token")
def token() -> Response:
    claims = jwt.decode(
        request.form["subject_token"], _public, algorithms=["ES256"], audience="floor"
    )
    now = int(time.time())
    signed = jwt.encode(
        {"sub": claims["sub"], "aud": "next", "iat": now, "exp": now + 300},
        _key,
        algorithm="ES256",
        headers={"typ": "at+jwt"},
    )
    return Response(
        json.dumps({"access_token": signed, "token_type": "Bearer"}),
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )
