"""A password never reaches a message: malformed DSNs are shown masked."""

from __future__ import annotations

import pytest
from conftest import with_dbname

import pgqueue
from pgqueue._dsn import mask_dsn, scrub
from pgqueue.cli._base import run

MALFORMED = [
    "postgresql://admin:S3cret%PW@h/db",
    "postgresql+psycopg://admin:S3cret%PW@h/db",
    "postgres://admin:S3cret%PW@h:5432/db?sslmode=require",
    "postgresql://admin:S3cretPW@h/db?foo=bar",
    "postgresql://admin@h/db?password=S3cret%PW",
    "host=h password=S3cretPW foo=bar",
    "host=h password='S3cret PW",
    "host=h password S3cretPW",
    r"host=h password='S3c\'retPW' foo=1",
]


@pytest.mark.parametrize("dsn", MALFORMED)
@pytest.mark.parametrize("source", ["--dsn", "PGQUEUE_DSN", "DATABASE_URL"])
def test_malformed_dsn_is_shown_masked(
    dsn: str, source: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGQUEUE_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    argv = ["stats"]
    if source == "--dsn":
        argv += ["--dsn", dsn]
    else:
        monkeypatch.setenv(source, dsn)

    code = run(argv)

    _, err = capsys.readouterr()
    assert code != 0
    assert err.startswith("error: invalid DSN") and err.count("\n") == 1
    assert "S3c" not in err and "****" in err
    if source != "--dsn":
        assert f"${source}" in err


def test_a_reachable_server_with_a_password_in_the_dsn(
    pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = with_dbname(pg_dsn, "pgqueue_no_such_db").replace("://", "://postgres:S3cret%25PW@", 1)
    dsn = dsn.replace("@postgres@", "@")  # a user already named in pg_dsn
    code = run(["stats", "--dsn", dsn])
    _, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1
    assert "S3cret" not in err and "pgqueue_no_such_db" in err


def test_mask_dsn_keeps_everything_but_the_password() -> None:
    assert mask_dsn("postgresql://u:p%40ss@h:5/d?sslmode=require") == (
        "postgresql://u:****@h:5/d?sslmode=require"
    )
    assert mask_dsn("postgresql://u@h/d") == "postgresql://u@h/d"
    assert mask_dsn("postgresql://u@h/d?password=x&sslmode=off") == (
        "postgresql://u@h/d?password=****&sslmode=off"
    )
    assert mask_dsn("dbname=d password='a b' user=u") == "dbname=d password=**** user=u"


def test_scrub_removes_the_password_as_written_and_decoded() -> None:
    dsn = "postgresql://u:p%40ssword@h/d"
    assert scrub('token "p%40ssword", then p@ssword', dsn) == 'token "****", then ****'
    # A short password is scrubbed where it is quoted, not in every word.
    assert scrub('bad token "ab%" in a message about abc', "postgresql://u:ab%@h/d") == (
        'bad token "****" in a message about abc'
    )


def test_reprs_never_show_the_password() -> None:
    app = pgqueue.App("postgresql://admin:S3cretPW@127.0.0.1:1/db")
    assert app.dsn  # resolved: the repr names host, port and database
    for text in (repr(app), repr(app.database), repr(app.database.config)):
        assert "S3cret" not in text
    assert "127.0.0.1:1/db" in repr(app)
