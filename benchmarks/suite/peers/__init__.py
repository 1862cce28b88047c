"""Peers: other PostgreSQL job queues for Python, each in a database of its own.

Each adapter sets the peer's schema up the way its documentation says, and
runs it at its documented default and at its best documented tuning. A peer
that is not installed (the ``bench`` extra) is reported as such, never blank.
"""

from __future__ import annotations

from benchmarks.suite.peers.pgqueuer_peer import PgQueuerPeer
from benchmarks.suite.peers.procrastinate_peer import ProcrastinatePeer
from benchmarks.suite.systems import System


def peers() -> list[System]:
    return [ProcrastinatePeer(), PgQueuerPeer()]
