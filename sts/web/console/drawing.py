"""A transaction drawn as a chain of boxes and arrows (the shape ``audit show`` tells).

The first box is whoever initiated the chain (a person, or the NHI of a ``client_credentials``
root); then each hop, in issued order, is an arrow numbered from 1 into the box of its target.
When a hop's actor is not the box the chain last reached (the service a person's sign-in token
was addressed to, say), the actor gets a box of its own, reached by an unnumbered arrow: so a
person's request through web, agent and tool to data reads person → web → agent → tool → data.
Pure values: the template turns them into inline SVG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BOX_WIDTH = 150
BOX_HEIGHT = 56
GAP = 80
MARGIN = 12

#: How each hop state of the lineage is shown to a responder.
STATE_LABELS = {
    "active": "live",
    "revoked": "revoked",
    "void": "revoked",
    "expired": "expired",
    "unknown": "unknown",
}


@dataclass(frozen=True)
class Box:
    name: str
    role: str
    x: int

    @property
    def center(self) -> int:
        return self.x + BOX_WIDTH // 2


@dataclass(frozen=True)
class Arrow:
    """An arrow from the box at ``x1`` to the one at ``x2``; ``hop`` is its number (``None``
    for the unnumbered arrow into an actor's box), ``state`` the hop's state as shown."""

    x1: int
    x2: int
    hop: int | None
    state: str
    self_hop: bool = False

    @property
    def middle(self) -> int:
        return (self.x1 + self.x2) // 2


@dataclass
class Drawing:
    boxes: list[Box] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)

    @property
    def width(self) -> int:
        return MARGIN * 2 + len(self.boxes) * BOX_WIDTH + max(len(self.boxes) - 1, 0) * GAP

    @property
    def height(self) -> int:
        return BOX_HEIGHT + 2 * MARGIN + 44

    def _add(self, name: str, role: str, hop: int | None, state: str) -> None:
        x = MARGIN + len(self.boxes) * (BOX_WIDTH + GAP)
        if self.boxes:
            self.arrows.append(Arrow(self.boxes[-1].x + BOX_WIDTH, x, hop, state))
        self.boxes.append(Box(name, role, x))


def state_label(status: str) -> str:
    return STATE_LABELS.get(status, status)


def chain_order(hops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The hops in chain order: every hop after the one whose token it was exchanged from
    (its parent), siblings by time. Hops issued in the same second are told apart by their
    lineage, never by chance."""
    known = {h["jti"] for h in hops}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for hop in hops:
        parent = hop.get("parent_jti")
        children.setdefault(parent if parent in known else None, []).append(hop)
    ordered: list[dict[str, Any]] = []
    pending = list(reversed(children.get(None, [])))
    while pending:
        hop = pending.pop()
        ordered.append(hop)
        pending.extend(reversed(children.get(hop["jti"], [])))
    return ordered


def draw(audit: dict[str, Any], kinds: dict[str, str] | None = None) -> Drawing:
    """The drawing of one transaction as :func:`sts.services.audit.show` tells it; each NHI's
    box names its kind (``service``, ``agent``, ``workload``) when ``kinds`` knows it."""
    kinds = kinds or {}
    drawing = Drawing()
    initiator = audit["initiated_by"]
    role = "person" if initiator.get("issuer") else "initiator"
    drawing._add(str(initiator["subject"]), role, None, "live")
    for number, hop in enumerate(audit["hops"], start=1):
        state = state_label(str(hop["status"]))
        actor, target = str(hop["actor"]), str(hop["target"])
        if actor == target:
            if drawing.boxes[-1].name == actor:  # it exchanged its own token for itself
                box = drawing.boxes[-1]
                drawing.arrows.append(Arrow(box.x, box.x + BOX_WIDTH, number, state, True))
            else:
                drawing._add(actor, kinds.get(actor, "nhi"), number, state)
            continue
        if drawing.boxes[-1].name != actor:
            drawing._add(actor, kinds.get(actor, "nhi"), None, "live")
        drawing._add(target, kinds.get(target, "nhi"), number, state)
    return drawing
