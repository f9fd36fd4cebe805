"""Round 30's code-health review (docs/robustness.md, "thirtieth round"): configs refuse
bad values with ``ArgumentError`` and take NumPy integers, limits agree between the CLI
and the library. Each test fails on the code before the round."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from exprsim.errors import ArgumentError, ExprsimError


def test_preprocess_config_takes_numpy_integers_and_stays_json() -> None:
    """``PreprocessConfig(input_size=np.int64(48))`` was refused ("must be a whole number",
    got 48); a NumPy ``align_size`` was kept and broke ``json.dumps`` of the config."""
    from exprsim.models.embedder import PreprocessConfig

    cfg = PreprocessConfig(input_size=np.int64(48), align_size=np.int32(112))
    assert type(cfg.input_size) is int and type(cfg.align_size) is int
    assert json.loads(json.dumps(dataclasses.asdict(cfg)))["input_size"] == 48
    assert cfg == PreprocessConfig()
    with pytest.raises(ArgumentError, match="input_size"):
        PreprocessConfig(input_size=0)
    with pytest.raises(ArgumentError, match="std"):
        PreprocessConfig(std=0.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: __import__("exprsim.fec.crops", fromlist=["x"]).CropConfig(size=2),
        lambda: __import__("exprsim.fec.crops", fromlist=["x"]).CropConfig(margin=-1.0),
        lambda: __import__("exprsim.fec.fetch", fromlist=["x"]).FetchConfig(timeout=0.0),
        lambda: __import__("exprsim.fec.fetch", fromlist=["x"]).FetchConfig(max_bytes=0),
    ],
    ids=["crop-size", "crop-margin", "fetch-timeout", "fetch-max-bytes"],
)
def test_fec_configs_refuse_with_argument_error(make) -> None:
    """These were plain ``ValueError`` (the other fields of the same configs were
    ``ArgumentError``): ``except ExprsimError`` missed them."""
    with pytest.raises(ArgumentError):
        make()


def test_video_jobs_refuse_with_argument_error(tmp_path) -> None:
    from exprsim.web.jobs import VideoJobs

    with pytest.raises(ArgumentError, match="max_queued"):
        VideoJobs(object(), tmp_path, max_queued=0)
    with pytest.raises(ArgumentError, match="keep_days"):
        VideoJobs(object(), tmp_path, keep_days=0)


def test_video_config_refuses_a_yaw_limit_over_180() -> None:
    """``VideoConfig(max_abs_yaw=200)`` passed (the quality check's own limit is 180, and
    ``exprsim video --max-yaw 200`` is refused)."""
    from exprsim.video.pipeline import VideoConfig, _check_numbers

    _check_numbers(VideoConfig(max_abs_yaw=180.0))
    with pytest.raises(ExprsimError, match=r"max_abs_yaw must be a number in \[0, 180\]"):
        _check_numbers(VideoConfig(max_abs_yaw=200.0))


def test_faces_size_takes_what_the_aligner_takes() -> None:
    """``exprsim faces --size`` stopped at 2048 where ``AlignConfig`` takes 4096."""
    from exprsim.cli import build_parser
    from exprsim.faces.align import MAX_CROP_SIZE

    args = build_parser().parse_args(["faces", "x.jpg", "--crops", "d", "--size", "4096"])
    assert args.size == MAX_CROP_SIZE == 4096
    with pytest.raises(SystemExit):
        build_parser().parse_args(["faces", "x.jpg", "--size", "4097"])
