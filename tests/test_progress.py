"""Progress bars where the process has no stderr (``pythonw``, services) or a closed one."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from exprsim.progress import can_draw, progress_bar


def test_bars_draw_on_a_usable_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    assert can_draw()
    assert list(progress_bar(range(3), enabled=True, desc="work", mininterval=0)) == [0, 1, 2]
    assert "work" in stream.getvalue()


@pytest.mark.parametrize("stream", [None, "closed"])
def test_bars_are_off_without_a_stream(monkeypatch: pytest.MonkeyPatch, stream: object) -> None:
    if stream == "closed":
        stream = io.StringIO()
        stream.close()
    monkeypatch.setattr(sys, "stderr", stream)
    assert not can_draw()
    assert list(progress_bar(range(3), enabled=True)) == [0, 1, 2]
    with progress_bar(enabled=True, total=2) as bar:  # the manual form, as Ray's loop uses it
        bar.update(2)


def test_embed_images_with_progress_and_no_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """``progress=True`` under ``pythonw``: tqdm failed on its first write ("'NoneType'
    object has no attribute 'write'") and the whole call was lost."""
    import exprsim
    from exprsim.samples import sample_dir

    photo = sorted(sample_dir().glob("*.jpg"))[0]
    model = exprsim.load_model()
    expected = model.embed_images([photo], progress=False)
    monkeypatch.setattr(sys, "stderr", None)
    got = model.embed_images([photo], progress=True)
    assert len(got) == len(expected) >= 1
    np.testing.assert_array_equal(got[0].embedding, expected[0].embedding)
