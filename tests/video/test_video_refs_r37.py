"""Round 37 (an audit of array layouts and types): ``analyze_video`` checked its
``tag_references`` at the tags stage, after every frame was decoded, detected and embedded
(minutes of a long video, then "embeddings of 16 values, references of 15"); they are
checked before the first frame is read."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.errors import ExprsimError
from exprsim.models.embedder import load_model
from exprsim.samples import sample_path
from exprsim.video import analyze_video


@pytest.mark.parametrize(
    ("refs", "said"),
    [
        ((np.ones((2, 15), np.float32), ["a", "b"]), "references of 15 values, the model's .* 16"),
        ((np.full((1, 16), np.nan, np.float32), ["a"]), "NaN or infinite"),
        ((np.ones((2, 16), np.float32), ["a"]), "one name per reference: 2 references, 1 names"),
        ((np.zeros((1, 16), np.float32), ["a"]), "all zeros"),
        (np.ones((2, 16), np.float32), "must be a pair"),
    ],
)
def test_bad_tag_references_are_refused_before_a_frame_is_read(refs, said) -> None:
    frames: list[int] = []
    with pytest.raises(ExprsimError, match=said):
        analyze_video(
            sample_path("langer_clip.mp4"),
            load_model(),
            classifier=None,
            tag_references=refs,
            on_frame=lambda done, total: frames.append(done),
        )
    assert frames == []  # was: every frame first


def test_references_not_of_length_one_are_warned_about_once(caplog) -> None:
    model = load_model()
    refs = (np.eye(2, 16, dtype=np.float32) * 3, ["a", "b"])
    with caplog.at_level("WARNING"):
        analyze_video(sample_path("langer_clip.mp4"), model, classifier=None, tag_references=refs)
    said = [r.getMessage() for r in caplog.records if "not of length 1" in r.getMessage()]
    assert len(said) == 1, said  # was twice
