"""Eighteenth audit round, io: every image load_image returns can be drawn on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SCRIPT = """
import sys
import numpy as np
from exprsim.io import as_rgb8, load_image
assert "pyarrow" not in sys.modules  # the path small RGB photos took without it
rows = []
for name in sys.argv[1:]:
    image = load_image(name)
    image[0, 0] = 7  # what cv2.rectangle and in-place edits do
    rows.append(image.flags.writeable)
rgba = np.zeros((20, 20, 4), np.uint8)
rgba[..., 3] = 128
rows.append(as_rgb8(rgba).flags.writeable)
print(rows)
"""


def test_loaded_images_are_writeable_whatever_their_mode(tmp_path: Path) -> None:
    """Before: gray, palette, RGBA and (until pyarrow was imported) small RGB files came
    back read-only ("assignment destination is read-only", cv2's "marked as readonly")."""
    from exprsim.samples import sample_path

    with Image.open(sample_path("grace_hopper.jpg")) as img:
        rgb = img.convert("RGB")
    names = []
    for mode, ext in (("RGB", "png"), ("RGB", "jpg"), ("L", "png"), ("RGBA", "png"), ("P", "gif")):
        names.append(str(tmp_path / f"x-{mode}.{ext}"))
        rgb.convert(mode).save(names[-1])
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *names], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([True] * 6)
    assert np.asarray(rgb).shape[2] == 3
