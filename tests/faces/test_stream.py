"""The threaded front-end: same faces as one thread, input order, bounded look-ahead."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from exprsim.errors import ImageError
from exprsim.faces.stream import analyze_stream, read_item, source_name
from exprsim.samples import sample_path

pytest.importorskip("mediapipe")

NAMES = [
    "grace_hopper.jpg",
    "pexels_langer_frame000.jpg",
    "astronaut_eileen_collins.jpg",
    "pexels_langer_frame288.jpg",
]


def _summary(items):
    return [
        (it.index, it.source, [(af.face.box.round(3).tolist(), af.crop.sum()) for af in it.faces])
        for it in items
    ]


def test_two_threads_give_the_same_faces_in_input_order():
    paths = [str(sample_path(n)) for n in NAMES] * 2
    one = list(analyze_stream(paths, workers=1))
    two = list(analyze_stream(paths, workers=2))
    assert [it.index for it in two] == list(range(len(paths)))
    assert [it.source for it in two] == paths
    assert all(len(it.faces) == 1 for it in two)
    assert _summary(two) == _summary(one)  # identical boxes and crops, whichever thread ran
    assert set(two[0].timings) == {"detect", "align"} and two[0].timings["detect"] > 0


def test_unreadable_inputs_are_reported_in_place(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    good = str(sample_path(NAMES[0]))
    items = [good, str(bad), ("named.png", b"\x89PNG garbage"), good]
    out = list(analyze_stream(items, workers=2))
    assert [it.source for it in out] == [good, str(bad), "named.png", good]
    assert [it.error is None for it in out] == [True, False, False, True]
    assert isinstance(out[1].error, ImageError) and out[1].faces == ()
    assert "named.png" in str(out[2].error)  # the pair's name is used in the message


def test_the_stream_reads_ahead_at_most_a_window():
    pulled = []

    def items():
        for i in range(40):
            pulled.append(i)
            yield np.zeros((64, 64, 3), np.uint8)

    stream = analyze_stream(items(), workers=2, window=4)
    for k, it in enumerate(stream):
        assert it.index == k and it.faces == ()
        assert len(pulled) <= k + 1 + 4  # never more than the window ahead of the consumer
    assert len(pulled) == 40


def test_a_detector_instance_runs_in_the_calling_thread():
    seen = set()

    class Recording:
        name = "recording"

        def detect(self, image):
            seen.add(threading.get_ident())
            return []

    out = list(analyze_stream([np.zeros((32, 32, 3), np.uint8)] * 5, Recording(), workers=2))
    assert len(out) == 5 and seen == {threading.get_ident()}


def test_source_names_and_reading():
    arr = np.zeros((4, 5, 3), np.uint8)
    assert source_name("a.jpg") == "a.jpg"
    assert source_name(b"x") == "<bytes>" and source_name(arr) == "<array>"
    assert source_name(("n.png", arr)) == "n.png"
    assert read_item(("n.png", arr)).shape == (4, 5, 3)
    with pytest.raises(ImageError, match=r"n\.png"):
        read_item(("n.png", b""))
