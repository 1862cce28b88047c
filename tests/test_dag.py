"""The flow layout (``pgqueue._dag``) on plain data: layers, groups, order, window."""

from __future__ import annotations

import pytest

from pgqueue._dag import Node, by_layer, layers, layout, status_counts


def chain(n: int, start: int = 1) -> list[Node]:
    return [Node(i, "t.step", "succeeded", (i - 1,) if i > start else ())
            for i in range(start, start + n)]  # fmt: skip


def chord(width: int, status: str = "succeeded") -> list[Node]:
    header = [Node(i, "t.fetch", status) for i in range(1, width + 1)]
    return [*header, Node(width + 1, "t.merge", "blocked", tuple(range(1, width + 1)))]


def test_a_layer_is_the_longest_path_from_a_root() -> None:
    # 1 -> 2 -> 3, and 1 -> 3 directly: 3 sits below 2, not beside it.
    nodes = [Node(1, "a", "succeeded"), Node(2, "b", "running", (1,)),
             Node(3, "c", "blocked", (1, 2)), Node(4, "d", "queued")]  # fmt: skip
    assert layers(nodes) == {1: 0, 2: 1, 3: 2, 4: 0}
    assert [[n.id for n in row] for row in by_layer(nodes, layers(nodes))] == [[1, 4], [2], [3]]


def test_parents_outside_the_graph_are_ignored_and_input_order_does_not_matter() -> None:
    nodes = [Node(9, "c", "blocked", (7, 8)), Node(8, "b", "queued", (7,)),
             Node(7, "a", "succeeded", (3,))]  # fmt: skip
    assert layers(nodes) == {7: 0, 8: 1, 9: 2}


def test_a_cycle_is_still_drawn_below_the_rest() -> None:
    nodes = [Node(1, "a", "queued"), Node(2, "b", "blocked", (3,)), Node(3, "c", "blocked", (2,))]
    assert layers(nodes) == {1: 0, 2: 1, 3: 1}


def test_edges_join_parent_boxes_to_child_boxes_top_down() -> None:
    nodes = [Node(1, "a", "succeeded"), Node(2, "b", "succeeded", (1,)),
             Node(3, "c", "running", (1,)), Node(4, "d", "blocked", (2, 3))]  # fmt: skip
    out = layout(nodes)
    assert sorted(out.edges) == [("j1", "j2"), ("j1", "j3"), ("j2", "j4"), ("j3", "j4")]
    y = {b.key: b.y for b in out.boxes}
    assert y["j1"] < y["j2"] == y["j3"] < y["j4"]
    assert out.layers == 3 and not out.more_before and not out.more_after and out.grouped == 0
    assert all(b.x >= 0 and b.x + 136 <= out.width for b in out.boxes)
    assert all(b.y + 44 <= out.height for b in out.boxes)


def test_a_crowded_layer_folds_into_a_group_with_counts_keeping_the_telling_jobs() -> None:
    nodes = chord(10_000)
    nodes[4999] = Node(5000, "t.fetch", "dead")
    nodes[7] = Node(8, "t.fetch", "running")
    out = layout(nodes, max_per_layer=10)
    row0 = [b for b in out.boxes if b.layer == 0]
    assert len(row0) == 10 and len(out.boxes) == 11
    singles = {b.jobs[0]: b.status for b in row0 if not b.group}
    assert singles[5000] == "dead" and singles[8] == "running"
    (group,) = [b for b in row0 if b.group]
    assert len(group.jobs) == 10_000 - 9 == out.grouped
    assert group.task == "t.fetch" and group.counts == {"succeeded": 9991}
    # The callback has one edge per drawn box above it, not 10,000.
    assert len(out.edges) == 10 and all(child == "j10001" for _, child in out.edges)


def test_a_group_of_several_tasks_says_how_many() -> None:
    nodes = [Node(i, f"t.{i % 3}", "queued") for i in range(1, 30)]
    (group,) = [b for b in layout(nodes, max_per_layer=5).boxes if b.group]
    assert group.task == "3 tasks" and group.counts == {"queued": 25}


def test_a_long_chain_is_drawn_in_a_window_of_layers() -> None:
    out = layout(chain(1000), first_layer=100, max_layers=30)
    assert out.layers == 1000 and (out.first_layer, out.last_layer) == (100, 129)
    assert out.more_before and out.more_after
    assert [b.jobs[0] for b in out.boxes] == list(range(101, 131))
    first = out.boxes[0]
    assert first.hidden_parents == 1  # its parent is above the window
    assert len(out.edges) == 29
    # Past the end: the last window that exists.
    assert layout(chain(10), first_layer=50).first_layer == 9


def test_ordering_uncrosses_two_independent_chains() -> None:
    # Roots 1, 2; children declared crosswise: 3 under 2, 4 under 1.
    nodes = [Node(1, "a", "succeeded"), Node(2, "b", "succeeded"),
             Node(3, "c", "queued", (2,)), Node(4, "d", "queued", (1,))]  # fmt: skip
    out = layout(nodes)
    x = {b.key: b.x for b in out.boxes}
    assert (x["j1"] < x["j2"]) == (x["j4"] < x["j3"])


def test_status_counts_are_in_the_order_an_operator_reads() -> None:
    nodes = [Node(1, "a", "succeeded"), Node(2, "a", "dead"), Node(3, "a", "succeeded"),
             Node(4, "a", "weird")]  # fmt: skip
    assert list(status_counts(nodes).items()) == [("dead", 1), ("succeeded", 2), ("weird", 1)]


def test_empty_graph_and_bad_limits() -> None:
    out = layout([])
    assert out.boxes == [] and out.layers == 0 and out.last_layer == -1
    with pytest.raises(ValueError):
        layout(chain(3), max_per_layer=1)
