"""Round 36, a review of round 35: a refit of ``ExpressionKNN`` refused for its column
names keeps the earlier fit whole; a reference set whose ``.npy`` header declares more data
than it holds is refused before NumPy allocates it."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.lib import format as npf

from exprsim.apps.classify import ExpressionKNN, load_reference_set
from exprsim.errors import ExprsimError


def test_a_refit_refused_for_its_column_names_keeps_the_earlier_fit() -> None:
    rng = np.random.default_rng(0)
    cols = [f"e{i}" for i in range(16)]
    a = pd.DataFrame(rng.normal(size=(20, 16)), columns=cols)
    knn = ExpressionKNN(k=3).fit(a, ["happy"] * 10 + ["sad"] * 10)
    b = pd.DataFrame(rng.normal(size=(30, 16)), columns=[0, *cols[1:]])
    with pytest.raises(TypeError, match="Feature names"):
        knn.fit(b, ["angry"] * 15 + ["neutral"] * 15)
    assert list(knn.classes_) == ["happy", "sad"] and len(knn.embeddings_) == 20
    assert list(knn.feature_names_in_) == cols


def _member(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    header = {"descr": npf.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
    npf.write_array_header_1_0(buf, {**header, "shape": shape})
    buf.write(b"\0" * 64)
    return buf.getvalue()


def test_a_reference_set_declaring_more_data_than_it_holds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("embeddings.npy", _member((2**38, 16)))  # 16 TiB declared, 1 KB file
        for name, arr in (
            ("labels", np.zeros(4, np.int64)),
            ("classes", np.array(["a", "b"])),
            ("model", np.array("m@1")),
            ("k", np.array(5)),
            ("meta", np.array("{}")),
        ):
            b = io.BytesIO()
            np.save(b, arr)
            z.writestr(name + ".npy", b.getvalue())
    with pytest.raises(ExprsimError, match=r"declares 17,592,186,044,416 bytes"):
        load_reference_set(path)
    load_reference_set()  # the shipped set passes the check
