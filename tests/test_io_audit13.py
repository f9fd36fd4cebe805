"""Thirteenth robustness round: one file object, memoryview or PIL image passed alone."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exprsim.errors import ImageError
from exprsim.io import as_inputs, load_image
from exprsim.samples import sample_path


def test_one_file_object_memoryview_or_pil_image_is_one_input():
    """Audit: a BytesIO alone was listed line by line (522 failures), a memoryview byte by
    byte (262,157), and a PIL image raised a bare TypeError."""
    data = Path(sample_path("grace_hopper.jpg")).read_bytes()
    pil = Image.open(sample_path("grace_hopper.jpg"))
    for one in (io.BytesIO(data), memoryview(data), pil, 42):
        assert len(as_inputs(one)) == 1 and as_inputs(one)[0] is one
    assert len(as_inputs([memoryview(data), data])) == 2


def test_a_memoryview_of_encoded_bytes_reads_as_the_bytes():
    data = Path(sample_path("grace_hopper.jpg")).read_bytes()
    np.testing.assert_array_equal(load_image(memoryview(data)), load_image(data))


@pytest.mark.parametrize("kind", ["bytesio"])
def test_the_api_refuses_them_in_one_clear_failure(kind, random_embedder):
    """(A PIL image, refused here until round 30, is now read as one input:
    tests/apps/test_user_audit30.py.)"""
    data = Path(sample_path("grace_hopper.jpg")).read_bytes()
    one = io.BytesIO(data)
    failures: list = []
    assert random_embedder.embed_images(one, failures=failures) == []
    assert len(failures) == 1 and "not an image source" in str(failures[0])
    with pytest.raises(ImageError, match="not an image source"):
        random_embedder.embed_images(one)
