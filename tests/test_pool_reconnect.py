"""The pools come back as soon as the server does, however long it was away.

psycopg_pool retries a failed connection attempt after 1, 2, 4, 8... seconds, and
counts the pending attempt as one of the pool's connections: left as it is, a
pool whose attempts failed through a 10-second outage waits until its next
attempt, some 5 s after the server is back, and a task waiting for a pool
connection meanwhile fails with ``PoolTimeout`` after 30 s (``make chaos`` found
it: 19 s without a completion after a ``pg_terminate_backend`` storm). pgqueue's
pools give up an attempt after ``POOL_RECONNECT_TIMEOUT`` instead, so the next
checkout starts a fresh one at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import psycopg
import psycopg_pool
import pytest

from pgqueue._db import Database, DatabaseConfig
from pgqueue._embedded import LocalCluster

OUTAGE = 10.0  # seconds: long enough for psycopg_pool's own backoff to reach 8 s


def test_both_pools_reconnect_at_once_after_an_outage(cluster: LocalCluster) -> None:
    async def main() -> None:
        db = Database(DatabaseConfig(dsn=cluster.dsn, max_connections=2))
        try:
            pool, apool = db.pool(), await db.pool_async()
            with pool.connection() as conn:
                conn.execute("SELECT 1")
            async with apool.connection() as aconn:
                await aconn.execute("SELECT 1")
            cluster.stop("fast")
            deadline = time.monotonic() + OUTAGE
            while time.monotonic() < deadline:  # both pools keep trying, and failing
                with contextlib.suppress(psycopg.Error, psycopg_pool.PoolTimeout), \
                        pool.connection(timeout=0.25) as conn:
                    conn.execute("SELECT 1")
                with contextlib.suppress(psycopg.Error, psycopg_pool.PoolTimeout):
                    async with apool.connection(timeout=0.25) as aconn:
                        await aconn.execute("SELECT 1")
            cluster.start()
            # Before the fix each pool's pending attempt slept on past the restart.
            with pool.connection(timeout=3.0) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            async with apool.connection(timeout=3.0) as aconn:
                cur = await aconn.execute("SELECT 1")
                assert await cur.fetchone() == (1,)
        finally:
            await db.close_async()

    asyncio.run(main())


def test_a_checkout_waiting_through_the_outage_gets_a_connection(cluster: LocalCluster) -> None:
    # psycopg_pool grows only on a new checkout: once its attempts are given up, a
    # client already waiting would wait out its whole timeout with the server back.
    db = Database(DatabaseConfig(dsn=cluster.dsn, max_connections=1))
    got: list[object] = []
    try:
        with db.pool().connection() as conn:
            conn.execute("SELECT 1")
        cluster.stop("fast")

        def wait() -> None:
            with db.pool().connection(timeout=60) as c:
                got.append(c.execute("SELECT 1").fetchone())

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        time.sleep(OUTAGE / 2)  # attempts fail and are given up meanwhile
        cluster.start()
        waiter.join(15)
        assert got == [(1,)]
    finally:
        db.close()


@pytest.fixture(autouse=True)
def _server_back(cluster: LocalCluster) -> Iterator[None]:
    yield
    cluster.start()  # a failed test must not leave the shared test cluster down
