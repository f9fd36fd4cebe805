"""Round 37 (docs/robustness.md): a tag set by hand (``FaceIndex.add_tags``) on a name that
reference faces define was taken off every face the references did not match at the next
`tag --index` (round 36 refused only the *first* reference of a hand-set name); now the
hand-set copy is refused, on SQLite and PostgreSQL, in one line; and every writer of tags
waits for the others (PostgreSQL reads at READ COMMITTED: two writers read the same tags
and the second write lost the first's)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex
from face_tables import unit_faces

NFD, NFC = "cafe\u0301", "caf\u00e9"


def _tags(ix: FaceIndex) -> dict[str, list[str]]:
    return {r.source.rsplit("/", 1)[-1]: list(r.tags) for r in ix.records()}


def test_a_hand_set_copy_of_a_reference_tag_is_refused(store: str | Path) -> None:
    with FaceIndex(store) as ix:
        ix.add_table(unit_faces([f"/p/{i}.jpg" for i in range(4)], 0), model="m@1")
        ids = sorted(r.id for r in ix.records())
        ref = np.eye(1, 16, dtype=np.float32)[0]
        ix.add_tag_reference(NFC, ref, "m@1")
        ix.retag({ids[0]: [NFC]}, [NFC])  # as `tag --index` would: face 0 matches
        for name in (NFC, ["mine", NFC]):
            with pytest.raises(ExprsimError, match="is defined by reference faces"):
                ix.add_tags(ids[1:3], name)
        assert _tags(ix) == {"0.jpg": [NFC], "1.jpg": [], "2.jpg": [], "3.jpg": []}
        ix.add_tags(ids[1:3], "mine")  # a name of one's own: taken
        ix.retag({ids[0]: [], ids[3]: [NFC]}, [NFC])  # `tag --index` again
        assert _tags(ix) == {"0.jpg": [], "1.jpg": ["mine"], "2.jpg": ["mine"], "3.jpg": [NFC]}


def test_a_reference_name_stored_decomposed_is_the_same_tag(store: str | Path) -> None:
    """An earlier exprsim stored names as typed: ``café`` with a combining accent."""
    with FaceIndex(store) as ix:
        ix.add_table(unit_faces(["/p/a.jpg"], 3), model="m@1")
        ix.add_tag_reference(NFC, np.eye(1, 16, dtype=np.float32)[0], "m@1")
        with ix._transaction() as c:
            c.execute("UPDATE tag_refs SET name = ?", (NFD,))
        with pytest.raises(ExprsimError, match="is defined by reference faces"):
            ix.add_tags([ix.records()[0].id], NFC)
        assert ix.records()[0].tags == ()


def test_a_name_without_references_is_set_by_hand_as_before(store: str | Path) -> None:
    with FaceIndex(store) as ix:
        ix.add_table(unit_faces(["/p/a.jpg", "/p/b.jpg"], 1), model="m@1")
        ids = sorted(r.id for r in ix.records())
        ref = np.eye(1, 16, dtype=np.float32)[0]
        ix.add_tag_reference("smile", ref, "m@1")
        ix.delete_tag("smile")  # no reference left: the name is free again
        ix.add_tags(ids, "smile")
        assert _tags(ix) == {"a.jpg": ["smile"], "b.jpg": ["smile"]}


def test_a_tag_writer_waits_for_another_writers_transaction(store: str | Path) -> None:
    """Before: on PostgreSQL ``add_tags`` read the tags while another transaction was
    about to write them, and wrote over them after it committed (one of the two lost)."""
    with FaceIndex(store) as ix:
        ix.add_table(unit_faces(["/p/a.jpg"], 2), model="m@1")
        fid = ix.records()[0].id
    first, second = FaceIndex(store), FaceIndex(store)
    inside, done = threading.Event(), threading.Event()

    def writer() -> None:
        with first._transaction() as c:
            getattr(c, "lock_tags", lambda: None)()  # (exprsim before round 37: none)
            inside.set()
            time.sleep(0.6)  # another writer comes now
            c.execute("UPDATE faces SET tags = ? WHERE id = ?", ('["one"]', fid))

    t = threading.Thread(target=writer)
    try:
        t.start()
        assert inside.wait(10)
        second.add_tags([fid], "two")
        done.set()
        t.join(10)
        assert sorted(second.records()[0].tags) == ["one", "two"]  # neither lost
    finally:
        t.join(10)
        first.close()
        second.close()
