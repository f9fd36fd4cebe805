"""Round 35 (a library inside another app): decoding on many threads leaves the host's
``warnings`` filters as they were. ``warnings.catch_warnings`` on each decoding thread
restored the list it saw on entry: filters were left set for the life of the process, and
a filter the host added meanwhile was removed (13 times in 20)."""

from __future__ import annotations

import io
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from exprsim.io import decode_image, pillow_quiet


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_threads_decoding_leave_the_filters_as_they_were() -> None:
    data = _png()
    with warnings.catch_warnings():  # this test's own changes undone at its end
        before = list(warnings.filters)
        added = threading.Event()

        def host() -> None:
            warnings.filterwarnings("ignore", message="the host's own filter")
            added.set()

        with ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(decode_image, data, f"{i}.png") for i in range(400)]
            threading.Thread(target=host).start()
            for job in jobs:
                assert job.result().shape == (64, 64, 3)
        assert added.wait(10)
        after = list(warnings.filters)
        host_filter = [
            f for f in after if f[1] is not None and f[1].pattern == "the host's own filter"
        ]
        assert len(host_filter) == 1  # the host's filter kept
        assert [f for f in after if f not in host_filter] == before  # none of ours left


def test_inside_the_block_pillows_warnings_are_ignored() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pillow_quiet(), pillow_quiet():  # nested: the inner leaves them for the outer
            warnings.warn("big", Image.DecompressionBombWarning, stacklevel=1)
        warnings.warn("after", Image.DecompressionBombWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["after"]


def test_no_module_changes_the_filters_with_catch_warnings() -> None:
    """Every suppression of Pillow's warnings goes through :func:`pillow_quiet` (the video
    reader's image path used catch_warnings too)."""
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "exprsim"
    found = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if re.search(r"^[^#\n]*\bwarnings\.catch_warnings\(", p.read_text(), re.M)
    ]
    assert found == []


def test_the_hosts_own_equal_filters_stay() -> None:
    """Review: the first version removed, by equality, the host's own filters of the same
    kind once a decode ended (warnings.filterwarnings had replaced them with its own)."""
    data = _png()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Image was not the expected size")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        before = list(warnings.filters)
        decode_image(data, "a.png")
        assert list(warnings.filters) == before
        assert all(a is b for a, b in zip(warnings.filters, before, strict=True))


def test_filters_a_hosts_block_put_back_go_at_the_next_decode() -> None:
    """A host's catch_warnings block entered while a decode ran puts back, on its exit, the
    list that held exprsim's filters: they go when the next decode ends."""
    import exprsim.io as exprsim_io

    data = _png()
    with warnings.catch_warnings():
        before = list(warnings.filters)
        with pillow_quiet(), warnings.catch_warnings():
            pass  # the host's block saw exprsim's filters and puts them back below
        warnings.filters[:0] = list(exprsim_io._QUIET_FILTERS)  # as that restore does
        decode_image(data, "a.png")
        assert list(warnings.filters) == before
