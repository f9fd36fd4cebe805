"""Round 37 (an audit of the advice inside exprsim's messages): a command printed without
the quotes a tag name of two words needs (`exprsim tag remove big smile --db DB` is a usage
error), commands without their required ``--db``, ``pass model='name@version'`` for a
table naming two models (which no model can fix), the way forward for an index of another
model spelled for the command line only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder

from exprsim.apps.tag import Tagger
from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex, ModelMismatchError
from face_tables import unit_faces


def test_a_tag_name_of_two_words_is_quoted_in_the_command_given(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "f.db") as ix:
        ix.add_table(unit_faces(["/p/a.jpg"], 0), model="m@1")
        ix.add_tags([ix.records()[0].id], "big smile")
        with pytest.raises(ExprsimError, match="`exprsim tag remove 'big smile' --db DB`"):
            ix.add_tag_reference("big smile", np.eye(1, 16, dtype=np.float32)[0], "m@1")


def test_a_table_of_no_model_or_of_two_is_told_what_helps(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "f.db") as ix:
        with pytest.raises(ExprsimError, match=r"names no model.*--model with the model's folder"):
            ix.add_table(unit_faces(["/p/a.jpg"], 0))
        two = unit_faces(["/p/a.jpg", "/p/b.jpg"], 0).assign(model=["m@1", "m@2"])
        with pytest.raises(ExprsimError, match="load each model's rows into its own index"):
            ix.add_table(two)  # was: "pass model='name@version'", refused whatever the name


def test_commands_given_carry_their_database_and_python_spelling(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder("stub@1")) as ix:
        with pytest.raises(ExprsimError, match=r"`exprsim tag add NAME IMAGE\.\.\. --db DB`"):
            Tagger(ix, embedder=StubEmbedder("stub@1")).tag_embeddings(np.eye(1, 16))
        ix.add_table(unit_faces(["/p/a.jpg"], 0), model="stub@1")
    with (
        FaceIndex(tmp_path / "f.db", embedder=StubEmbedder("other@2")) as ix,
        pytest.raises(ModelMismatchError, match=r"Python: index\.reembed\(\)"),
    ):
        ix.check_model("other@2")
