"""Round 36 (an audit of every deletion): tags set by hand (``FaceIndex.add_tags``) were
taken off by `tag --index` once a reference face of the same name existed (tagging by
reference manages the name); the first reference of a name faces carry already is
refused, in one line naming the way out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex
from face_tables import unit_faces


def test_the_first_reference_of_a_hand_set_tag_is_refused(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "f.db") as ix:
        ix.add_table(unit_faces([f"/p/{i}.jpg" for i in range(4)], 0), model="m@1")
        ix.add_tags([1, 2], "smile")
        ref = np.eye(1, 16, dtype=np.float32)[0]
        with pytest.raises(ExprsimError, match=r"2 faces carry the tag 'smile' set by hand"):
            ix.add_tag_reference("smile", ref, "m@1")
        assert ix.tag_references() == []
        ix.add_tag_reference("grin", ref, "m@1")  # another name: taken
        ix.remove_tags(["smile"])
        ix.add_tag_reference("smile", ref, "m@1")  # the hand-set tag taken off first
        ix.retag({3: ["smile"]}, ["smile"])  # tagged by reference: the next reference too
        ix.add_tag_reference("smile", -ref, "m@1")
        assert sorted(r["name"] for r in ix.tag_references()) == ["grin", "smile", "smile"]
