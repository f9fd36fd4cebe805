"""Round 33 (the public objects): an alignment template given as an array or lists is kept
as the tuple it stands for (an array passed the checks, then made every aligned face raise
"truth value of an array is ambiguous"); detectors pickle and deep-copy as their name and
options (one that had run held an unpicklable interpreter)."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest

import exprsim
from exprsim.faces.align import FER2013_TEMPLATE, AlignConfig
from exprsim.faces.detect import create_detector, list_detectors
from exprsim.faces.pipeline import resolve_detector
from exprsim.models.embedder import PreprocessConfig
from exprsim.samples import sample_path


@pytest.mark.parametrize(
    "template",
    [
        np.array(FER2013_TEMPLATE),
        [list(p) for p in FER2013_TEMPLATE],
        tuple((np.float64(x), np.float64(y)) for x, y in FER2013_TEMPLATE),
    ],
)
def test_a_template_of_another_type_is_the_same_config(template) -> None:
    cfg = AlignConfig(template=template)
    assert cfg == AlignConfig() and hash(cfg) == hash(AlignConfig())
    assert cfg.template == FER2013_TEMPLATE and isinstance(cfg.template, tuple)
    json.dumps(cfg.to_dict())
    pre = PreprocessConfig(template=template)
    assert pre == PreprocessConfig() and pre.template == FER2013_TEMPLATE


def test_an_array_template_aligns_faces() -> None:
    cfg = AlignConfig(template=np.array(FER2013_TEMPLATE))
    faces = exprsim.analyze_image(str(sample_path("grace_hopper.jpg")), align_config=cfg)
    assert len(faces) == 1  # was: ValueError (truth value of an array) on every face


def test_a_numpy_size_is_stored_as_int() -> None:
    cfg = AlignConfig(size=np.int64(96))
    assert type(cfg.size) is int and json.dumps(cfg.to_dict())


def test_a_bad_template_is_one_line() -> None:
    with pytest.raises(exprsim.errors.ArgumentError, match="5 \\(x, y\\) points"):
        AlignConfig(template=[[0.1, "a"], [1]])  # type: ignore[list-item]


@pytest.mark.parametrize("name", ["haar", "mediapipe"])
def test_a_detector_that_ran_pickles_and_deep_copies(name: str) -> None:
    if name not in list_detectors(available_only=True):
        pytest.skip(f"{name} is not installed here")
    img = exprsim.load_image(sample_path("grace_hopper.jpg"))
    det = create_detector(name, max_side=320)
    n = len(det.detect(img))
    for other in (pickle.loads(pickle.dumps(det)), copy.deepcopy(det)):
        assert other is not det and type(other) is type(det) and other.max_side == 320
        assert len(other.detect(img)) == n
    det.close()
    with pytest.raises(exprsim.errors.ExprsimError, match="closed"):
        pickle.loads(pickle.dumps(det)).detect(img)


def test_the_shared_detector_pickles_as_its_name() -> None:
    shared = resolve_detector("haar" if "haar" in list_detectors(available_only=True) else None)
    assert pickle.loads(pickle.dumps(shared)) is shared  # the same process: the same one


class _Plugin:
    pass


def test_a_subclass_reduce_is_honoured() -> None:
    from exprsim.faces.detect import BaseDetector

    class Plugin(BaseDetector):
        name = "plugin"

        def __reduce__(self):
            return (_Plugin, ())

    det = Plugin()
    det._made_by = ("haar", {})  # type: ignore[attr-defined]
    assert type(pickle.loads(pickle.dumps(det))) is _Plugin
