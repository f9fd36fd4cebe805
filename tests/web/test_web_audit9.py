"""Ninth robustness round: the web app tells a fault of its index (503) from an error of
the request (4xx) by the error's type."""

from __future__ import annotations

from exprsim.errors import ExprsimError, IndexDatabaseError


def test_a_request_error_that_happens_to_name_the_database_is_not_a_503() -> None:
    from exprsim.web.app import _index_fault

    names = ("/srv/data/faces.db",)
    # was: any ExprsimError whose text began with the database's name became a 503
    assert _index_fault(ExprsimError("/srv/data/faces.db: bad tag name 'x,y'"), names) is None
    text, headers = _index_fault(IndexDatabaseError(names[0], "no such database"), names)
    assert (text, headers) == ("the index cannot be used: no such database", {})


def test_a_read_only_fault_is_told_by_its_flag_not_its_words() -> None:
    from exprsim.web.app import _index_fault

    names = ("/srv/f.db",)
    flagged = IndexDatabaseError(names[0], "cannot be written here", read_only=True)
    assert _index_fault(flagged, names) == (
        "the index is read-only on this server; nothing was changed",
        {},
    )
    plain = IndexDatabaseError(names[0], "read-only (a damaged page)")
    assert _index_fault(plain, names)[0].startswith("the index cannot be used: ")


def test_another_models_index_is_a_fault_of_the_server() -> None:
    from exprsim.index.store import ModelMismatchError
    from exprsim.web.app import _index_fault

    err = ModelMismatchError("references were made with a@1, the embedder is b@2")
    text, headers = _index_fault(err, ("/srv/f.db",))
    assert "another model" in text and "/srv" not in text and not headers
