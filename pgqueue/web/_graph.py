"""A flow's graph as inline SVG, drawn on the server from ``pgqueue._dag``'s layout.

No JavaScript and no library: boxes are links (to the job's page, or for a
group of folded jobs to the flow's job table), edges are curves from a parent's
bottom to a child's top, coloured by the parent's outcome. Colours come from
the page's CSS classes (light and dark), never from inline styles (the
dashboard's Content-Security-Policy allows none).
"""

from __future__ import annotations

from html import escape

from pgqueue._dag import Box, Geometry, Layout

GEOMETRY = Geometry()
BOX_CHARS = 20  # what a line of a box holds; its tooltip has the whole task name


def short_task(task: str, limit: int = BOX_CHARS) -> str:
    """The task's last dotted part (``myapp.tasks.fetch`` -> ``fetch``), cut to ``limit``."""
    name = task.rsplit(".", 1)[-1] or task
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _summary(box: Box) -> str:
    if box.group:
        counts = ", ".join(f"{n:,} {s}" for s, n in box.counts.items())
        return f"{len(box.jobs) + box.more:,} more jobs: {counts}"
    return box.status


def _edge_class(parent: Box) -> str:
    outcome = parent.status if not parent.group or len(parent.counts) == 1 else "mixed"
    if outcome == "succeeded":
        return "edge done"
    if outcome in ("dead", "cancelled"):
        return "edge failed"
    return "edge wait"


def _box_svg(box: Box, href: str, current: int | None, geo: Geometry) -> str:
    w, h = geo.box_width, geo.box_height
    classes = ["node", f"s-{box.status}"]
    if box.group:
        classes.append("group")
    if current is not None and current in box.jobs and not box.group:
        classes.append("current")
    if box.group:
        count = f"+{len(box.jobs) + box.more:,} x "
        first = count + short_task(box.task, BOX_CHARS - len(count))
        second = ", ".join(f"{n:,} {s}" for s, n in list(box.counts.items())[:2])
        if len(box.counts) > 2:
            second += ", …"
        tip = f"{box.task}: {_summary(box)}"
    else:
        first = f"#{box.jobs[0]} "
        first += short_task(box.task, max(6, BOX_CHARS - len(first)))
        second = box.status + (f" · {box.hidden_parents} above"
                               if box.hidden_parents else "")  # fmt: skip
        tip = f"job {box.jobs[0]}: {box.task}, {box.status}"
    text_width = w - 18
    return (f'<a href="{escape(href)}" class="{" ".join(classes)}" '
            f'transform="translate({box.x:.1f},{box.y:.1f})">'
            f"<title>{escape(tip)}</title>"
            f'<rect width="{w:.0f}" height="{h:.0f}" rx="6"/>'
            f'<text class="t1" x="10" y="18"{_fit(first, 6.6, text_width)}>{escape(first)}</text>'
            f'<text class="t2" x="10" y="35"{_fit(second, 6.0, text_width)}>{escape(second)}'
            "</text></a>")  # fmt: skip


def _fit(text: str, char_width: float, width: float) -> str:
    """Squeeze a line that would overflow its box (an estimate: SVG has no text wrap)."""
    if len(text) * char_width <= width:
        return ""
    return f' textLength="{width:.0f}" lengthAdjust="spacingAndGlyphs"'


def _edge_svg(parent: Box, child: Box, geo: Geometry) -> str:
    x1, y1 = parent.x + geo.box_width / 2, parent.y + geo.box_height
    x2, y2 = child.x + geo.box_width / 2, child.y
    bend = max(geo.gap_y / 2, (y2 - y1) / 2)
    return (f'<path class="{_edge_class(parent)}" marker-end="url(#arrow)" '
            f'd="M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} '
            f'{x2:.1f},{y2 - 2:.1f}"/>')  # fmt: skip


def flow_svg(
    graph: Layout,
    *,
    job_href: str,
    group_href: str,
    title: str,
    current: int | None = None,
    geometry: Geometry = GEOMETRY,
) -> str:
    """The SVG of ``graph``; ``job_href`` has a ``{id}`` field; ``current`` is highlighted."""
    index = {b.key: b for b in graph.boxes}
    edges = "".join(_edge_svg(index[p], index[c], geometry) for p, c in graph.edges)
    boxes = "".join(
        _box_svg(b, group_href if b.group else job_href.format(id=b.jobs[0]), current, geometry)
        for b in graph.boxes
    )
    jobs = sum(len(b.jobs) for b in graph.boxes)
    label = (f"{title}: {jobs:,} jobs in {len(graph.boxes)} boxes, layers "
             f"{graph.first_layer + 1} to {graph.last_layer + 1} of {graph.layers}")  # fmt: skip
    w, h = max(graph.width, 1.0), max(graph.height, 1.0)
    return (f'<svg class="flow" width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}" '
            f'role="img" aria-label="{escape(label)}"><title>{escape(title)}</title>'
            '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path class="arrow" '
            'd="M0,0 L8,4 L0,8 z"/></marker></defs>'
            f"<g class=\"edges\">{edges}</g><g class=\"nodes\">{boxes}</g></svg>")  # fmt: skip
