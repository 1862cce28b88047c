"""The insert paths behind ``App``'s enqueue methods (after the middleware).

One job: one short statement (``_client.enqueue_one_*``; async on a pooled
connection, ``_lean`` sends it through libpq directly). A batch: the JSON
statement or COPY (``_bulk``). A batch with dependencies, or a flow: the
linked COPY path (``_linked``). Each takes the database port, the registry
(for ``max_payload``) and the owner the returned ``Job`` values are bound to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pgqueue import _bulk, _client, _lean, _linked
from pgqueue._core import JobSpec, enqueue_one_params
from pgqueue._job import Job

if TYPE_CHECKING:
    from pgqueue._db import Database
    from pgqueue._protocols import JobOwner
    from pgqueue._registry import Registry


def insert_one(
    database: Database, registry: Registry, owner: JobOwner, spec: JobSpec, connection: Any
) -> Job:
    params = enqueue_one_params(spec, registry.max_payload)  # bad values raise first
    with database.connection(connection) as conn:
        row = _client.enqueue_one_sync(conn, spec, params, database.limited_queues)
    return Job.from_row(row, owner)


async def insert_one_async(
    database: Database, registry: Registry, owner: JobOwner, spec: JobSpec, connection: Any
) -> Job:
    params = enqueue_one_params(spec, registry.max_payload)
    limited = database.limited_queues
    async with database.connection_async(connection) as conn:
        ins: Any = _lean.NOT_TAKEN
        if connection is None and database.config.prepare and spec.queue not in limited:
            ins = await _lean.enqueue(conn, params)  # the pool's: libpq directly
        if ins is None or ins is _lean.NOT_TAKEN:
            row = await _client.enqueue_one_async(conn, spec, params, limited, refused=ins is None)
        else:
            row = _client.job_row(spec, ins)
    return Job.from_row(row, owner)


def insert(
    database: Database,
    registry: Registry,
    owner: JobOwner,
    specs: list[JobSpec],
    connection: Any,
    *,
    flow: bool = False,
) -> list[Job]:
    """``specs`` in one transaction; ``flow``: they are one flow (``flow_id``)."""
    if flow or _linked.has_links(specs):
        linked = _linked.prepare(specs, flow=flow, max_payload=registry.max_payload)
        with database.connection(connection) as conn:
            return _linked.enqueue_linked_sync(conn, linked, owner)
    if len(specs) <= 1:
        return [insert_one(database, registry, owner, s, connection) for s in specs]
    batch = _bulk.prepare(specs, max_payload=registry.max_payload)  # raises before I/O
    with database.connection(connection) as conn:
        return _client.enqueue_bulk_sync(conn, batch, owner)


async def insert_async(
    database: Database,
    registry: Registry,
    owner: JobOwner,
    specs: list[JobSpec],
    connection: Any,
    *,
    flow: bool = False,
) -> list[Job]:
    if flow or _linked.has_links(specs):
        linked = _linked.prepare(specs, flow=flow, max_payload=registry.max_payload)
        async with database.connection_async(connection) as conn:
            return await _linked.enqueue_linked_async(conn, linked, owner)
    if len(specs) <= 1:
        return [await insert_one_async(database, registry, owner, s, connection) for s in specs]
    batch = _bulk.prepare(specs, max_payload=registry.max_payload)
    async with database.connection_async(connection) as conn:
        return await _client.enqueue_bulk_async(conn, batch, owner)
