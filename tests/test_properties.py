"""Property-based tests (hypothesis): the image loader, the FEC CSV parser and config loading
either succeed or raise their one typed error, whatever they are given."""

from __future__ import annotations

import io
import string

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from exprsim.errors import DataError, ImageError  # noqa: E402

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _png(h: int, w: int, mode: str) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(h * 1000 + w)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


@FAST
@given(st.binary(max_size=4096))
def test_any_bytes_decode_or_raise_image_error(data):
    from exprsim.io import decode_image

    try:
        img = decode_image(data, "x")
    except ImageError as exc:
        assert str(exc).startswith("x: ")
    else:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


@FAST
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from(["RGB", "L", "LA", "P", "RGBA", "1", "I;16"]),
    st.integers(0, 2000),
    st.binary(min_size=1, max_size=8),
)
def test_damaged_real_images_decode_or_raise_image_error(h, w, mode, at, junk):
    from exprsim.io import decode_image

    data = bytearray(_png(h, w, mode))
    at = at % len(data)
    data[at : at + len(junk)] = junk  # overwrite a few bytes somewhere
    try:
        img = decode_image(bytes(data), "x")
    except ImageError:
        return
    assert img.dtype == np.uint8 and img.shape[2] == 3


@FAST
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int32, np.bool_]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6),
        elements=None,
    )
)
def test_any_array_becomes_rgb8_or_raises_image_error(arr):
    from exprsim.io import load_image

    try:
        img = load_image(arr)
    except ImageError:
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[:2] == arr.shape[:2]


_FIELD = st.text(alphabet=string.printable + "é日\x00", max_size=12)


@FAST
@given(st.lists(st.lists(_FIELD, min_size=0, max_size=30), max_size=12))
def test_fec_csv_parser_reports_instead_of_raising(tmp_path_factory, rows):
    from exprsim.data.fec import parse_fec_csv

    path = tmp_path_factory.mktemp("fec") / "x.csv"
    path.write_text("\n".join(",".join(r) for r in rows), encoding="utf-8", errors="surrogatepass")
    try:
        table = parse_fec_csv(path)
    except DataError:
        return
    rep = table.report
    assert rep.n_parsed == len(table.line)
    assert rep.n_parsed + len(rep.issues) == rep.n_rows  # every record parsed or reported


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    ["epochs", "lr", "margins", "preprocess", "augmentation", "model_kwargs", "readout_angles",
     "max_train", "augment", "model", "seed", "min_votes", "data"]
)  # fmt: skip


@FAST
@given(st.dictionaries(_KEYS, _JSON, max_size=5) | _JSON)
def test_config_loading_returns_a_config_or_value_error(data):
    from exprsim.config import from_dict
    from exprsim.training.ferplus import _check_choices
    from exprsim.training.ferplus_config import TrainConfig

    try:
        cfg = from_dict(TrainConfig, data)
        _check_choices(cfg)
    except ValueError:
        return
    assert isinstance(cfg, TrainConfig)
    assert isinstance(cfg.epochs, int) and isinstance(cfg.lr, float)
