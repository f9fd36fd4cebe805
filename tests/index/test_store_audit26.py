"""Round 26 (docs/robustness.md): labels and tags over an index's life."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from stub_embedder import StubEmbedder, write_images
from test_bulk import embed_table

from exprsim.index.store import FaceIndex


def _annotations(ix: FaceIndex) -> dict[str, tuple]:
    return {Path(r.source).name: (r.label, r.tags) for r in ix.records()}


def test_a_bulk_reload_keeps_the_labels_and_tags_of_the_faces_it_replaces(tmp_path):
    first = embed_table(3)
    first["sha256"] = [f"a{i}" for i in range(3)]
    again = first.copy()
    again["sha256"] = [f"b{i}" for i in range(3)]  # the same pixels, metadata rewritten
    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(first)
        ids = [r.id for r in ix.records()]
        ix.set_label(ids[0], "mine")
        ix.add_tags(ids[1], "holiday")
        report = ix.add_table(again)
        assert report.files_replaced == 3
        got = _annotations(ix)
    # was (None, ()) for both: every label and tag of the replaced photos dropped
    assert got["img_00000.jpg"] == ("mine", ())
    assert got["img_00001.jpg"] == (None, ("holiday",))


def test_a_reload_with_other_faces_in_the_same_places_does_not_carry_labels(tmp_path):
    first, other = embed_table(2), embed_table(2, seed=9)
    other["source"] = first["source"]  # other photos saved under the same names
    first["sha256"], other["sha256"] = ["a0", "a1"], ["b0", "b1"]
    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(first)
        ix.set_label(ix.records()[0].id, "grandma")
        assert ix.add_table(other).files_replaced == 2
        assert {label for label, _ in _annotations(ix).values()} == {None}


def test_a_renamed_photo_keeps_its_labels_and_tags_through_prune(tmp_path):
    folder = tmp_path / "photos"
    paths = write_images(folder, 2)
    with FaceIndex(tmp_path / "faces.db", embedder=StubEmbedder()) as ix:
        ix.add([folder])
        rec = next(r for r in ix.records() if Path(r.source) == paths[0])
        ix.set_label(rec.id, "grandma")
        ix.add_tags(rec.id, "holiday")
        os.rename(paths[0], folder / "renamed.png")
        ix.add([folder])
        ix.remove(ix.missing_under([folder]))  # what `index add --prune` does
        got = _annotations(ix)
    assert got["renamed.png"] == ("grandma", ("holiday",))  # was (None, ())
    assert paths[0].name not in got


def test_another_photo_under_the_same_name_does_not_inherit_labels(tmp_path):
    folder = tmp_path / "photos"
    a, b = write_images(folder, 2)
    with FaceIndex(tmp_path / "faces.db", embedder=StubEmbedder()) as ix:
        ix.add([a])
        ix.set_label(ix.records()[0].id, "grandma")
        stranger = b.read_bytes()
        a.write_bytes(stranger)  # a camera's numbering restarted: another face there
        st = os.stat(a)
        os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        ix.add([a])
        ((label, _),) = _annotations(ix).values()
        emb = ix.embeddings()[1]
    assert label is None  # was "grandma": the boxes overlapped, the faces did not match
    assert np.isfinite(emb).all()


def test_labelling_a_face_id_the_index_does_not_hold_is_refused(tmp_path):
    import pytest

    from exprsim.errors import ExprsimError

    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(embed_table(2))
        real = ix.records()[0].id
        for write in (lambda ids: ix.set_label(ids, "x"), lambda ids: ix.add_tags(ids, "y")):
            with pytest.raises(ExprsimError, match="no face with id 999999"):
                write([real, 999999])  # was silently nothing for 999999
            assert _annotations(ix)["img_00000.jpg"] == (None, ())  # all or nothing
        ix.set_label(real, "x")
        assert _annotations(ix)["img_00000.jpg"] == ("x", ())


def test_index_info_prints_no_python_none(tmp_path, capsys):
    from exprsim.cli import main

    db = tmp_path / "faces.db"
    with FaceIndex(db) as ix:
        ix.add_table(embed_table(2))  # no ANN cache built yet: its backend is unknown
    assert main(["index", "info", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "None" not in out and "files" in out  # was "ann_backend       None"


def test_a_removed_face_id_is_never_given_to_another_face(tmp_path):
    folder = tmp_path / "photos"
    a, b, c = write_images(folder, 3)
    with FaceIndex(tmp_path / "faces.db", embedder=StubEmbedder()) as ix:
        ix.add([a, b])
        top = max(r.id for r in ix.records())
        ix.remove([b])  # the highest id goes
        ix.add([c])
        new = max(r.id for r in ix.records())
    # was the removed face's id (SQLite reused it): ids written out before named another face
    assert new > top
