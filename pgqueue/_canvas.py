"""``pgqueue.chain``, ``group`` and ``chord``: flows as values, flattened into one batch.

A flow is a tree of job specs (``task.job(...)``, ``task.options(...).job(...)``)
and these three nodes; ``app.enqueue_flow(flow)`` flattens it into a list of
specs in dependency order (each job after its parents: cycles cannot be
built) and inserts them in one transaction. What each node means:

- ``chain(a, b, c)``: ``b`` waits for ``a`` and receives its result as first
  argument (``pass_result="previous"``), ``c`` likewise for ``b``. After a
  group, the next step waits for every member and receives the list of their
  results, in order (``"list"``). A step built with
  ``task.options(pass_result=False).job(...)`` waits but receives nothing.
- ``group(a, b, c)``: independent jobs (after the previous step of a chain,
  each receives its result). Its result is the list of its members' results.
- ``chord(header, body)``: ``body`` waits for every job of ``header`` (a group,
  or an iterable of nodes) and receives the list of their results.

Nesting is free: a chain of groups, a chord in a chain, a group of chains (a
member chain's result is its last step's). Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Union

from pgqueue._core import JobSpec

Node = Union[JobSpec, "Chain", "Group", "Chord"]


class _Flow:
    """What the three nodes share: ``a | b`` chains them."""

    __slots__ = ()

    def __or__(self, other: Node) -> Chain:
        return Chain(self, other)  # type: ignore[arg-type]

    def __ror__(self, other: Node) -> Chain:  # spec | flow
        return Chain(other, self)  # type: ignore[arg-type]


class Chain(_Flow):
    """Steps run one after another, each receiving the previous result."""

    __module__ = "pgqueue"
    __slots__ = ("steps",)

    def __init__(self, *steps: Node) -> None:
        self.steps: tuple[Node, ...] = tuple(_checked(s) for s in steps)

    def __repr__(self) -> str:
        return f"chain({', '.join(map(_name, self.steps))})"


class Group(_Flow):
    """Independent jobs; their results form a list, in order."""

    __module__ = "pgqueue"
    __slots__ = ("members",)

    def __init__(self, *members: Node | Iterable[Node]) -> None:
        if len(members) == 1 and not isinstance(members[0], JobSpec | _Flow):
            members = tuple(members[0])  # group(job for x in xs)
        self.members: tuple[Node, ...] = tuple(_checked(m) for m in members)

    def __repr__(self) -> str:
        return f"group({', '.join(map(_name, self.members))})"


class Chord(_Flow):
    """``body`` runs once every job of ``header`` finished, with their results as a list."""

    __module__ = "pgqueue"
    __slots__ = ("body", "header")

    def __init__(self, header: Group | Iterable[Node], body: Node) -> None:
        self.header = header if isinstance(header, Group) else Group(tuple(header))
        if not self.header.members:
            raise ValueError("a chord needs at least one job in its header")
        self.body: Node = _checked(body)

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {_name(self.body)})"


def chain(*steps: Node) -> Chain:
    """Run ``steps`` in order; each step receives the previous result as first argument."""
    return Chain(*steps)


def group(*members: Node | Iterable[Node]) -> Group:
    """Run ``members`` independently: ``group(a, b)`` or ``group(job for ...)``."""
    return Group(*members)


def chord(header: Group | Iterable[Node], body: Node) -> Chord:
    """Run ``body`` after every job of ``header``, with the list of their results."""
    return Chord(header, body)


chain.__module__ = group.__module__ = chord.__module__ = "pgqueue"


def _checked(node: Any) -> Node:
    if not isinstance(node, JobSpec | _Flow):
        raise TypeError(
            "a flow is made of task.job(...) specs, chain, group and chord;"
            f" not {type(node).__name__}"
        )
    return node  # type: ignore[return-value]


def _name(node: Node) -> str:
    return f"{node.task}(...)" if isinstance(node, JobSpec) else repr(node)


def flatten(flow: Node) -> tuple[list[JobSpec], list[int]]:
    """The flow's specs in dependency order (parents as spec objects, for
    ``_linked.link``) and the positions of its tails: the jobs nothing else in
    the flow waits for, whose results are the flow's."""
    out: list[JobSpec] = []
    tails, _ = _add(_checked(flow), (), False, out, set())
    if not out:
        raise ValueError("a flow needs at least one job")
    where = {id(spec): i for i, spec in enumerate(out)}
    return out, [where[id(t)] for t in tails]


def _add(
    node: Node, prev: tuple[JobSpec, ...], many: bool, out: list[JobSpec], used: set[int]
) -> tuple[tuple[JobSpec, ...], bool]:
    """Append ``node`` after ``prev`` (a group's tails when ``many``); its tails.
    ``used``: the ids of the spec objects already in ``out``."""
    if isinstance(node, JobSpec):
        spec = node
        if prev or id(node) in used:
            # A copy: the same spec object used twice is two jobs (and the
            # caller's spec is left as it was).
            mode = node.pass_result
            if prev and mode is None:
                mode = "list" if many else "previous"
            spec = node.linked((*node.depends_on, *prev), mode)
        used.add(id(spec))
        out.append(spec)
        return (spec,), False
    if isinstance(node, Chain):
        for step in node.steps:
            prev, many = _add(step, prev, many, out, used)
        return prev, many
    if isinstance(node, Group):
        tails: list[JobSpec] = []
        for member in node.members:
            tails.extend(_add(member, prev, many, out, used)[0])
        return tuple(tails), True
    header, _ = _add(node.header, prev, many, out, used)
    return _add(node.body, header, True, out, used)
