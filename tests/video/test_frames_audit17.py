"""Seventeenth round (a review of the hidden-name walks): a folder of frames skips hidden
names too, so a macOS ``._`` twin is not frame 0 and every later frame keeps its number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from exprsim.video.frames import FrameReader


def test_hidden_names_are_not_frames(tmp_path: Path) -> None:
    for i in range(3):
        Image.fromarray(np.full((32, 32, 3), 40 * (i + 1), np.uint8)).save(tmp_path / f"f{i}.png")
    (tmp_path / "._f0.png").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)  # AppleDouble
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / ".f.png.123.1.tmp.png")
    with FrameReader(tmp_path, sequence_fps=10) as reader:
        frames = list(reader)
    assert reader.info.n_frames == 3
    assert [f.index for f in frames] == [0, 1, 2]
    assert [int(f.image.mean()) for f in frames] == [40, 80, 120]
