"""pytest fixtures for suites that use pgqueue (loaded by the ``pytest11`` entry point).

Fixtures (all prefixed ``pgqueue_`` so they never clash with a suite's own):

``pgqueue_server_dsn`` (session) the server's maintenance DSN: ``$PGQUEUE_TEST_DSN``,
                       else ``postgresql://postgres@127.0.0.1:5432/postgres``, else a
                       throwaway local cluster started for the session.
``pgqueue_dsn``        (session) a throwaway database, migrated to head, dropped after.
``pgqueue_db``         (function) ``pgqueue_dsn`` with every ``pgqueue`` table emptied.
``pgqueue_app``        (function) the suite's App pointed at ``pgqueue_db``: the App named
                       by ``--pgqueue-app`` or the ``pgqueue_app`` ini option
                       (``package.module:app``), else a new ``pgqueue.App``; its pools
                       are closed and its database restored after the test.

The helpers to use with them live in ``pgqueue.testing``. Disable the plugin
with ``-p no:pgqueue``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgqueue import App, _testdb


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgqueue")
    group.addoption(
        "--pgqueue-app",
        default=None,
        help="the App the pgqueue_app fixture returns, as 'package.module:app'",
    )
    parser.addini("pgqueue_app", "the App the pgqueue_app fixture returns ('package.module:app')")


@pytest.fixture(scope="session")
def pgqueue_server_dsn() -> Iterator[str]:
    """The test server's maintenance DSN (nothing is created in that database)."""
    with _testdb.server() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def pgqueue_dsn(pgqueue_server_dsn: str) -> Iterator[str]:
    """A throwaway database for the session, migrated to head, dropped at the end."""
    with _testdb.migrated_database(pgqueue_server_dsn) as dsn:
        yield dsn


@pytest.fixture
def pgqueue_db(pgqueue_dsn: str) -> str:
    """``pgqueue_dsn`` with every ``pgqueue`` table emptied (identities reset)."""
    _testdb.truncate(pgqueue_dsn)
    return pgqueue_dsn


@pytest.fixture
def pgqueue_app(pgqueue_db: str, request: pytest.FixtureRequest) -> Iterator[App]:
    """The suite's App (``--pgqueue-app``, ini ``pgqueue_app``, else a new one) on pgqueue_db."""
    spec = request.config.getoption("--pgqueue-app") or request.config.getini("pgqueue_app")
    app = App.from_spec(str(spec)) if spec else App()
    saved = app.database
    app.use_dsn(pgqueue_db)
    try:
        yield app
    finally:
        app.close()
        app.database = saved
