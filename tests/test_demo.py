"""``sts demo`` end to end, as a newcomer runs it: a person's request through four hops, the
audit answer, the agent revoked, the next request dying at the agent's hop, and nothing left
behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

STS = [sys.executable, "-c", "from sts.cli import main; main()"]


def run_sts(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    return subprocess.run([*STS, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_when_run_then_it_shows_the_chain_the_audit_and_the_revocation(tmp_path):
    started = time.monotonic()
    done = run_sts("demo", cwd=tmp_path)
    elapsed = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert elapsed < 30
    # Each hop's decoded token: sub unchanged, aud the next hop, scope narrowing, act growing.
    hops = re.findall(
        r"hop \d  (\S+).* -> (\w+)\n\s+sub\s+(\w+)\n\s+aud\s+(\w+)\n\s+scope\s+(.+)\n"
        r"\s+act\s+(.+)\n\s+exp\s+\S+ \(in (\d+) s\)", out)
    assert [h[:6] for h in hops[:4]] == [
        ("alice", "web", "alice", "web", "orders:read orders:write profile",
         "-  (no actor yet: the person's own token)"),
        ("web", "agent", "alice", "agent", "orders:read orders:write",
         '{"sub": "web"}  (acted: web)'),
        ("agent", "tool", "alice", "tool", "orders:read",
         '{"sub": "agent", "act": {"sub": "web"}}  (acted: web -> agent)'),
        ("tool", "data", "alice", "data", "orders:read",
         '{"sub": "tool", "act": {"sub": "agent", "act": {"sub": "web"}}}'
         "  (acted: web -> agent -> tool)"),
    ]
    lifetimes = [int(h[6]) for h in hops[:4]]
    assert 590 <= lifetimes[0] <= 600 and all(290 <= t <= 300 for t in lifetimes[1:3])
    assert 110 <= lifetimes[3] <= 120  # the tool -> data rule caps the lifetime
    txns = set(re.findall(r"txn\s+([\w-]{20,})", out))
    assert len(txns) == 1
    assert "answered: orders of alice: A-1001 coffee beans, A-1002 grinder" in out
    # The audit answer: who initiated it, who touched it.
    assert "initiated by  alice (issuer https://idp.demo.invalid)" in out
    assert "executed by   web -> agent -> tool" in out
    assert re.search(r"hop 3: tool -> data \[orders:read\]  credential cred_\w+  rule rule_\w+"
                     r"  active", out)
    # The fourth question: what the data service reported it touched, under its hop.
    (txn,) = txns
    assert ("4. data accessed and sent (as the services reported it):\n"
            "     hop 3: data read db://orders  [pii, order-history]  2 record(s)  sent to tool\n"
            in out)  # fmt: skip
    # After the revocation: what died of request 1's chain, and where the console draws it.
    assert ("     hop 1: web -> agent  revoked\n     hop 2: agent -> tool  revoked\n"
            "     hop 3: tool -> data  revoked\n") in out  # fmt: skip
    assert re.search(rf"the console draws this chain at http://127\.0\.0\.1:\d+/console/txn/{txn}",
                     out)  # fmt: skip
    # The revocation (the hop addressed to the agent and the two it acted in, DESIGN §7),
    # and the next request dying at the agent's hop.
    assert "revoked nhi agent: 3 live token(s) in 1 transaction(s)" in out
    request_2 = out.split("Request 2:")[1]
    assert ("hop 2  web -> agent: REFUSED by the STS: invalid_target (The requested target is "
            "unknown or not allowed.)") in request_2
    assert "=> the request died at the agent's hop (web -> agent); web answered HTTP 502" in out
    # Never a token or a secret on screen.
    assert "eyJ" not in out + done.stderr and "sts_" not in out + done.stderr
    # Everything it started is gone, and so is its working directory.
    workdir = Path(re.search(r"workdir  (\S+)", out).group(1))
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    assert len(pids) == 5
    assert not any(alive(pid) for pid in pids)
    assert not workdir.exists()
    assert f"Stopped 5 process(es) and removed {workdir}" in out


def test_demo_when_the_named_sts_is_unreachable_then_it_fails_cleanly(tmp_path):
    done = run_sts("demo", "--issuer", "http://127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[-3].startswith(
        "demo failed: cannot use the STS at http://127.0.0.1:9: GET "
        "http://127.0.0.1:9/.well-known/oauth-authorization-server failed: "
    )
    workdir = re.search(r"workdir  (\S+)", done.stdout).group(1)
    assert lines[-1] == f"Stopped 0 process(es) and removed {workdir}"
    assert not Path(workdir).exists()
