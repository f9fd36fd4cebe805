"""Round 33 (the public objects): ``repr`` of a video's analysis is its sizes, not every
face's thumbnail as escaped bytes (7.8 KB a face, 140 MB for an hour of video); a
``FrameReader`` says in one line that it neither pickles nor copies."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from exprsim.video.frames import FrameReader, VideoError

from .test_video_report_audit12 import _analysis


def test_the_repr_of_an_analysis_is_short() -> None:
    a = _analysis([4.0, 2.0], [[30, 20], [10]])  # 60 faces with thumbnails
    text = repr(a)
    assert len(text) < 300, len(text)  # was about 1 KB a face here
    assert text.startswith("VideoAnalysis(60 faces in 60 sampled frames (0.2 s each), 2 persons")
    assert "thumb_jpeg" not in repr(a.faces[0]) and "\\x" not in repr(a.faces[0])
    assert a == copy.deepcopy(a)  # equality still sees every field


def test_a_frame_reader_neither_pickles_nor_copies(tmp_path) -> None:
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"f{i}.png"), np.full((16, 16, 3), 50 * i, np.uint8))
    with FrameReader(folder, every=1) as reader:
        for what in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(VideoError, match="FrameReader"):
                what(reader)
        assert len(list(reader)) == 2  # the reader itself is untouched
