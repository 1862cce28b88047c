"""The issue's targets, each met or missed, and by how much (None: not measurable)."""

from __future__ import annotations

from typing import Any

from benchmarks.suite.stats import median


def _best(figs: dict[str, Any], processes: int | None = None) -> tuple[str | None, float | None]:
    best: tuple[str | None, float | None] = (None, None)
    for key, fig in figs.items():
        if processes is not None and not key.endswith(f"/{processes}p"):
            continue
        value = median(fig)
        if value is not None and (best[1] is None or value > best[1]):
            best = (key, value)
    return best


def _target(
    name: str,
    value: float | None,
    goal: float,
    unit: str,
    detail: str,
    lower_is_better: bool = False,
) -> dict[str, Any]:
    if value is None:
        return {
            "name": name,
            "met": None,
            "measured": None,
            "goal": goal,
            "summary": f"not measured ({detail})",
        }
    met = value < goal if lower_is_better else value >= goal
    if unit == "x":
        shown, wanted = f"{value:.2f}x", f"{goal:.2f}x"
    elif unit == "ms":
        shown, wanted = f"{value:.2f} ms", f"< {goal:.2f} ms"
    else:
        shown, wanted = f"{value:.0%}", f"{goal:.0%}"
    if met:
        summary = f"met: {shown} (target {wanted})"
    else:
        gap = (value / goal - 1) if lower_is_better else (1 - value / goal)
        summary = f"missed: {shown} (target {wanted}), {gap:.0%} short"
    return {
        "name": name,
        "met": met,
        "measured": value,
        "goal": goal,
        "summary": f"{summary}; {detail}",
    }


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    drain = results.get("drain", {})
    ours = drain.get("pgqueue", {})
    peer_names = [n for n in drain if n != "pgqueue"]
    for processes in (1, 2):
        key, value = _best(ours, processes)
        best_peer: tuple[str | None, float | None] = (None, None)
        for name in peer_names:
            k, v = _best(drain[name], processes)
            if v is not None and (best_peer[1] is None or v > best_peer[1]):
                best_peer = (f"{name} {k}", v)
        ratio = value / best_peer[1] if value and best_peer[1] else None
        out.append(
            _target(
                f"drain, {processes} process{'es' if processes > 1 else ''}: >= 2x the best peer",
                ratio,
                2.0,
                "x",
                f"pgqueue {key} {value or 0:,.0f}/s vs {best_peer[0]} {best_peer[1] or 0:,.0f}/s"
                if best_peer[1]
                else "no peer measured",
            )
        )
    ceiling = results.get("ceiling", {})
    for processes in (1, 2):
        key = f"tuned/{processes}p"
        ours_v, ceil_v = median(ours.get(key)), median(ceiling.get(key))
        out.append(
            _target(
                f"drain ({key}): >= 40% of the PostgreSQL ceiling loop",
                ours_v / ceil_v if ours_v and ceil_v else None,
                0.40,
                "%",
                f"{ours_v or 0:,.0f}/s vs ceiling {ceil_v or 0:,.0f}/s"
                " (same batch, same processes)",
            )
        )
    enq = results.get("enqueue", {})
    bulk = median(enq.get("pgqueue", {}).get("bulk"))
    peer_bulk = [(n, median(v.get("bulk"))) for n, v in enq.items() if n not in ("pgqueue", "raw")]
    peer_bulk = [(n, v) for n, v in peer_bulk if v]
    if peer_bulk:
        name, value = max(peer_bulk, key=lambda nv: nv[1] or 0)
        out.append(
            _target(
                "enqueue_many: >= the best peer's bulk rate",
                bulk / value if bulk and value else None,
                1.0,
                "x",
                f"{bulk or 0:,.0f}/s vs {name} {value:,.0f}/s",
            )
        )
    else:
        out.append(
            _target(
                "enqueue_many: >= the best peer's bulk rate", None, 1.0, "x", "no peer measured"
            )
        )
    copy = median(enq.get("raw", {}).get("copy"))
    out.append(
        _target(
            "enqueue_many: >= 50% of a raw COPY of the same rows",
            bulk / copy if bulk and copy else None,
            0.5,
            "%",
            f"{bulk or 0:,.0f}/s vs COPY {copy or 0:,.0f}/s",
        )
    )
    single = median(enq.get("pgqueue", {}).get("single"))
    insert = median(enq.get("raw", {}).get("insert"))
    out.append(
        _target(
            "single enqueue: >= 80% of the raw INSERT-and-commit loop",
            single / insert if single and insert else None,
            0.8,
            "%",
            f"{single or 0:,.0f}/s vs {insert or 0:,.0f}/s",
        )
    )
    out += _latency_targets(results.get("latency", {}))
    backlog = results.get("backlog", {})
    ref = median(backlog.get("reference"))
    for case, label in (("queued", "queued"), ("finished", "finished rows")):
        fig = backlog.get(case, {})
        value = median(fig)
        size = fig.get("queued") if case == "queued" else fig.get("finished_rows")
        out.append(
            _target(
                f"backlog ({size or 0:,} {label}): >= 80% of the rate at "
                f"{backlog.get('reference', {}).get('queued', 0):,} queued",
                value / ref if value and ref else None,
                0.8,
                "%",
                f"{value or 0:,.0f}/s vs {ref or 0:,.0f}/s",
            )
        )
    return out


def _latency_targets(latency: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for q in ("p50", "p99"):
        ours = [
            (k, median(v.get(q)))
            for k, v in latency.get("pgqueue", {}).items()
            if isinstance(v, dict)
        ]
        ours = [(k, v) for k, v in ours if v is not None]
        peers = [
            (f"{n} {k}", median(v.get(q)))
            for n, figs in latency.items()
            if n != "pgqueue"
            for k, v in figs.items()
            if isinstance(v, dict)
        ]
        peers = [(k, v) for k, v in peers if v is not None]
        if not ours or not peers:
            out.append(
                _target(
                    f"idle latency {q}: below the best peer's",
                    None,
                    0.0,
                    "ms",
                    "no peer measured" if ours else "pgqueue not measured",
                )
            )
            continue
        ok, ov = min(ours, key=lambda kv: kv[1] or 0)
        pk, pv = min(peers, key=lambda kv: kv[1] or 0)
        assert ov is not None and pv is not None
        out.append(
            _target(
                f"idle latency {q}: below the best peer's",
                ov,
                pv,
                "ms",
                f"pgqueue {ok} {ov:.1f} ms vs {pk} {pv:.1f} ms",
                lower_is_better=True,
            )
        )
    return out
