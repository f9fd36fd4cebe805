"""Ninth robustness round, part 2: an index database that cannot be reached is answered
with a fixed sentence and ``Retry-After``; its detail (hosts, sockets, users) goes to the
server's log only."""

from __future__ import annotations

import logging
import pickle

import pytest


def test_an_unreachable_database_gets_a_fixed_answer_and_retry_after() -> None:
    from exprsim import errors
    from exprsim.web.app import INDEX_RETRY_AFTER_S, _index_fault

    unavailable = getattr(errors, "IndexUnavailableError", None)
    assert unavailable is not None and issubclass(unavailable, errors.IndexDatabaseError)
    detail = (
        'cannot connect to PostgreSQL (connection to server at "db.internal" (10.1.2.3), '
        'port 5432 failed: FATAL: password authentication failed for user "svc")'
    )
    err = unavailable("postgresql://svc:***@db.internal/faces", detail)
    # was: "the index cannot be used: cannot connect to PostgreSQL (connection to server ...)"
    text, headers = _index_fault(err, ("postgresql://svc:pw@db.internal/faces",))
    assert text == "the index database is unreachable; try again"
    assert headers == {"Retry-After": str(INDEX_RETRY_AFTER_S)}
    back = pickle.loads(pickle.dumps(err))  # whole, type included
    assert type(back) is unavailable and (back.db, back.detail) == (err.db, err.detail)


def test_a_raw_driver_error_is_no_500_and_says_nothing_of_the_server() -> None:
    from exprsim.web.app import _index_fault

    class OperationalError(Exception):  # as psycopg's, should one escape the backend
        pass

    OperationalError.__module__ = "psycopg"
    fault = _index_fault(OperationalError('connection to server on socket "/run/pg" failed'), ())
    assert fault is not None and "/run/pg" not in fault[0] and "Retry-After" in fault[1]


def test_the_app_logs_the_detail_and_sends_the_sentence(
    make_client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from exprsim import errors
    from exprsim.web import app as app_mod

    unavailable = getattr(errors, "IndexUnavailableError", errors.IndexDatabaseError)
    client = make_client()

    def gone(self: object) -> object:
        raise unavailable("postgresql://svc:***@db/faces", 'no route to "db.internal" (10.1.2.3)')

    monkeypatch.setattr(app_mod._State, "index", gone)
    with caplog.at_level(logging.WARNING):
        r = client.get("/api/health")
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert "10.1.2.3" not in r.text and "db.internal" not in r.text
    assert "10.1.2.3" in caplog.text  # for the operator
