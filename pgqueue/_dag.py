"""The layout of a flow's graph, with no I/O: layers, grouping, order, coordinates.

Used by ``pgqueue flows show`` (layers as text) and the dashboard's flow page
(an SVG drawn on the server). A layered ("Sugiyama") layout, kept small:

1. **Layers.** A job's layer is the length of the longest path from a job
   without parents (a parent always comes first: cycles are impossible by
   construction, but a parent outside the given jobs is simply ignored).
2. **Window.** At most ``max_layers`` layers are drawn, from ``first_layer``;
   the caller says which part is not drawn.
3. **Groups.** A layer with more than ``max_per_layer`` jobs keeps the most
   telling ones as boxes (dead, running, failed... before succeeded) and folds
   the rest into one group box with counts per status: a chord of 10,000 jobs
   is ten boxes, not 10,000.
4. **Order.** Barycentre sweeps (down, up, down) reduce crossings.
5. **Coordinates.** Each layer a row, centred; edges join box to box.

Everything here is proportional to the jobs and edges given (a few
milliseconds for 10,000 jobs), then to the boxes drawn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# The order in which a crowded layer keeps jobs as their own box: what an
# operator looks for first.
INTEREST = ("dead", "running", "failed", "cancelled", "queued", "blocked", "succeeded")


@dataclass  # not frozen: built 10,000 at a time, and frozen ones are built 5x slower
class Node:
    """One job of the graph: its id, task, status and parents (declaration order)."""

    id: int
    task: str
    status: str
    parents: tuple[int, ...] = ()


@dataclass
class Box:
    """A drawn box: one job, or (``group``) several jobs of one layer."""

    key: str
    layer: int
    jobs: tuple[int, ...]
    task: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    group: bool = False
    hidden_parents: int = 0  # parents in layers before the window
    more: int = 0  # jobs a group stands for beyond ``jobs`` (counted, not read)
    x: float = 0.0
    y: float = 0.0


@dataclass
class Layout:
    """Boxes with coordinates, edges between box keys, and what was left out."""

    boxes: list[Box]
    edges: list[tuple[str, str]]
    width: float
    height: float
    layers: int  # layers in the whole graph
    first_layer: int
    last_layer: int  # last layer drawn (first_layer - 1 when none)
    grouped: int  # jobs folded into group boxes

    @property
    def more_before(self) -> bool:
        return self.first_layer > 0

    @property
    def more_after(self) -> bool:
        return self.last_layer < self.layers - 1


@dataclass(frozen=True)
class Geometry:
    box_width: float = 136.0
    box_height: float = 44.0
    gap_x: float = 10.0
    gap_y: float = 46.0
    margin: float = 12.0


def layers(nodes: Iterable[Node]) -> dict[int, int]:
    """Each job's layer: the longest path to it from a job without parents (Kahn's order)."""
    by_id = {n.id: n for n in nodes}
    pending = dict.fromkeys(by_id, 0)
    children: dict[int, list[int]] = {}
    for n in by_id.values():
        for p in set(n.parents) if len(n.parents) > 1 else n.parents:
            if p in by_id:
                pending[n.id] += 1
                children.setdefault(p, []).append(n.id)
    ready = [i for i, k in pending.items() if k == 0]
    layer = dict.fromkeys(ready, 0)
    while ready:
        i = ready.pop()
        for c in children.get(i, ()):
            layer[c] = max(layer.get(c, 0), layer[i] + 1)
            pending[c] -= 1
            if pending[c] == 0:
                ready.append(c)
    # A cycle cannot be built through the API; drawn anyway, below everything else.
    rest = [i for i in by_id if i not in layer]
    bottom = max(layer.values(), default=-1) + 1
    for i in rest:
        layer[i] = bottom
    return layer


def by_layer(nodes: Sequence[Node], layer_of: Mapping[int, int]) -> list[list[Node]]:
    """The jobs of each layer, in id order."""
    rows: list[list[Node]] = [[] for _ in range(max(layer_of.values(), default=-1) + 1)]
    for n in sorted(nodes, key=lambda n: n.id):
        rows[layer_of[n.id]].append(n)
    return rows


def status_counts(nodes: Iterable[Node]) -> dict[str, int]:
    """Jobs per status, in the order of ``INTEREST`` (then any other status)."""
    counts = Counter(n.status for n in nodes)
    order = {s: i for i, s in enumerate(INTEREST)}
    return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def layout(
    nodes: Sequence[Node],
    *,
    first_layer: int = 0,
    max_layers: int = 30,
    max_per_layer: int = 8,
    geometry: Geometry | None = None,
) -> Layout:
    """Lay out ``nodes``: layers ``first_layer`` .. ``first_layer + max_layers - 1``."""
    if max_layers < 1 or max_per_layer < 2:
        raise ValueError("need max_layers >= 1 and max_per_layer >= 2")
    geo = geometry or Geometry()
    layer_of = layers(nodes)
    rows = by_layer(nodes, layer_of)
    first = max(0, min(first_layer, len(rows) - 1)) if rows else 0
    window = rows[first : first + max_layers]
    boxes: list[list[Box]] = []
    box_of: dict[int, Box] = {}
    grouped = 0
    for offset, members in enumerate(window):
        row, folded = _boxes(first + offset, members, max_per_layer)
        grouped += folded
        boxes.append(row)
        for box in row:
            for job in box.jobs:
                box_of[job] = box
    edges: dict[tuple[str, str], None] = {}
    up: dict[str, list[Box]] = {}
    for members in window:
        for n in members:
            child = box_of[n.id]
            for p in n.parents:
                parent = box_of.get(p)
                if parent is None:
                    if layer_of.get(p, first) < first:
                        child.hidden_parents += 1
                    continue
                if (parent.key, child.key) not in edges:
                    edges[(parent.key, child.key)] = None
                    up.setdefault(child.key, []).append(parent)
    _order(boxes, up)
    width, height = _place(boxes, geo)
    drawn = [b for row in boxes for b in row]
    return Layout(boxes=drawn, edges=list(edges), width=width, height=height,
                  layers=len(rows), first_layer=first, last_layer=first + len(window) - 1,
                  grouped=grouped)  # fmt: skip


def _boxes(layer: int, members: list[Node], cap: int) -> tuple[list[Box], int]:
    """The boxes of one layer: every job, or the ``cap - 1`` most telling and a group."""
    if len(members) <= cap:
        keep, rest = members, []
    else:
        rank = {s: i for i, s in enumerate(INTEREST)}
        ordered = sorted(members, key=lambda n: (rank.get(n.status, -1), n.id))
        keep = sorted(ordered[: cap - 1], key=lambda n: n.id)
        rest = ordered[cap - 1 :]
    row = [Box(key=f"j{n.id}", layer=layer, jobs=(n.id,), task=n.task, status=n.status)
           for n in keep]  # fmt: skip
    if rest:
        tasks = Counter(n.task for n in rest)
        task = tasks.most_common(1)[0][0] if len(tasks) == 1 else f"{len(tasks)} tasks"
        counts = status_counts(rest)
        row.append(Box(key=f"g{layer}", layer=layer, jobs=tuple(sorted(n.id for n in rest)),
                       task=task, status=next(iter(counts)), counts=counts,
                       group=True))  # fmt: skip
    return row, len(rest)


def _order(rows: list[list[Box]], up: dict[str, list[Box]], sweeps: int = 3) -> None:
    """Barycentre ordering: each row sorted by the mean position of its neighbours."""
    index = {b.key: b for row in rows for b in row}
    down: dict[str, list[Box]] = {}
    for child, parents in up.items():
        for p in parents:
            down.setdefault(p.key, []).append(index[child])
    for sweep in range(sweeps):
        indices = range(1, len(rows)) if sweep % 2 == 0 else range(len(rows) - 2, -1, -1)
        neighbours = up if sweep % 2 == 0 else down
        for i in indices:
            position = {b.key: k for k, b in enumerate(rows[i - 1 if sweep % 2 == 0 else i + 1])}
            rows[i].sort(key=lambda b: (_mean(b, neighbours, position), b.jobs[0]))


def _mean(box: Box, neighbours: dict[str, list[Box]], position: dict[str, int]) -> float:
    seen = [position[n.key] for n in neighbours.get(box.key, ()) if n.key in position]
    # No neighbour in the adjacent row: keep to the left, in id order.
    return sum(seen) / len(seen) if seen else -1.0


def _place(rows: list[list[Box]], geo: Geometry) -> tuple[float, float]:
    widest = max((len(r) for r in rows), default=0)
    step_x = geo.box_width + geo.gap_x
    width = 2 * geo.margin + max(0, widest * step_x - geo.gap_x)
    for i, row in enumerate(rows):
        left = geo.margin + (widest - len(row)) * step_x / 2
        for k, box in enumerate(row):
            box.x = left + k * step_x
            box.y = geo.margin + i * (geo.box_height + geo.gap_y)
    height = 2 * geo.margin + max(0, len(rows) * (geo.box_height + geo.gap_y) - geo.gap_y)
    return width, height
