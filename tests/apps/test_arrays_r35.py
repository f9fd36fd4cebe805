"""Round 35 (the Python API given what a data scientist holds): path-like inputs keep
their names, `load_image` gives the caller its own array, `ExpressionKNN` checks column
names as scikit-learn does, complex embeddings and bytes labels."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exprsim.apps.classify import ExpressionKNN
from exprsim.errors import ExprsimError
from exprsim.io import load_image


class PathLikeThing:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def __fspath__(self) -> str:
        return self.path


def test_a_path_like_query_keeps_its_name(tmp_path: Path) -> None:
    from exprsim.faces.stream import source_name

    p = tmp_path / "x.jpg"
    p.write_bytes(b"")
    entry = next(os.scandir(tmp_path))
    assert source_name(entry) == str(p) and source_name(PathLikeThing(p), 3) == str(p)


def test_load_image_gives_the_caller_its_own_array() -> None:
    rgb = np.full((8, 9, 3), 7, np.uint8)
    out = load_image(rgb)
    assert not np.shares_memory(out, rgb) and np.array_equal(out, rgb)
    out[0, 0] = 255
    assert rgb[0, 0, 0] == 7  # drawing on the result drew on the input
    frozen = rgb.copy()
    frozen.flags.writeable = False
    assert load_image(frozen).flags.writeable


def _fitted(names: list[str]) -> tuple[ExpressionKNN, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 16)).astype(np.float32)
    y = np.array(["happy", "sad"] * 20)
    df = pd.DataFrame(x, columns=names)
    return ExpressionKNN(k=3).fit(df, y), df, y


def test_columns_in_another_order_are_refused() -> None:
    names = [f"e{i}" for i in range(16)]
    knn, df, _ = _fitted(names)
    assert list(knn.feature_names_in_) == names
    same = knn.predict(df)
    with pytest.raises(ValueError, match="same order as they were in fit"):
        knn.predict(df[sorted(names)])  # e0, e1, e10, ...: silently other answers before
    renamed = df.rename(columns={"e3": "x3"})
    with pytest.raises(ExprsimError, match=r"(?s)unseen at fit time:\n- x3\n.*missing:\n- e3"):
        knn.predict(renamed)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert (knn.predict(df.to_numpy()) == same).all()
    assert "does not have valid feature names" in str(seen[0].message)
    knn.fit(df.to_numpy(), np.array(["happy", "sad"] * 20))  # a refit without names
    assert not hasattr(knn, "feature_names_in_")


def test_bytes_labels_are_their_text() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 16)).astype(np.float32)
    text = np.array(["happy", "sad"] * 10)
    want = ExpressionKNN(k=3).fit(x, text).predict(x)
    for labels in (text.astype("S"), np.array([s.encode() for s in text], dtype=object)):
        knn = ExpressionKNN(k=3).fit(x, labels)
        assert knn.classes_.tolist() == ["happy", "sad"]
        assert (knn.predict(x) == want).all()
        assert knn.score(x, labels) == ExpressionKNN(k=3).fit(x, text).score(x, text)


@pytest.mark.parametrize("call", ["summarize", "distance_matrix", "odd_one_out", "match_tags",
                                  "add_table", "query", "add_tag_reference"])  # fmt: skip
def test_complex_embeddings_are_refused(call: str, tmp_path: Path) -> None:
    """They were cut to their real parts with only NumPy's warning (distance_matrix even
    gave a complex matrix); ExpressionKNN alone refused them."""
    from exprsim.apps.compare import distance_matrix, odd_one_out
    from exprsim.apps.summarize import summarize
    from exprsim.apps.tag import match_tags
    from exprsim.index import FaceIndex

    rng = np.random.default_rng(2)
    z = (rng.normal(size=(6, 16)) + 1j * rng.normal(size=(6, 16))) / 6
    runs = {
        "summarize": lambda: summarize(z, n_clusters=2),
        "distance_matrix": lambda: distance_matrix(z),
        "odd_one_out": lambda: odd_one_out(z[:3]),
        "match_tags": lambda: match_tags(z, z[:2], ["a", "b"], threshold=1.0),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning either
        if call in runs:
            with pytest.raises(ExprsimError, match="complex numbers"):
                runs[call]()
            return
        with FaceIndex(tmp_path / "f.db") as ix:
            df = pd.DataFrame(z, columns=[f"e{i}" for i in range(16)])
            df.insert(0, "source", [f"/p/{i}.jpg" for i in range(6)])
            with pytest.raises(ExprsimError, match="complex numbers"):
                if call == "add_table":
                    ix.add_table(df, model="stub@1")
                elif call == "query":
                    ix.query(z[0], k=1)
                else:
                    ix.add_tag_reference("a", z[0], model="stub@1")


def test_a_tensor_that_requires_grad_is_one_clear_line() -> None:
    torch = pytest.importorskip("torch")
    from exprsim.apps.summarize import summarize

    t = torch.randn(6, 16, requires_grad=True)
    with pytest.raises(ExprsimError, match=r"requires grad; pass tensor.detach\(\)"):
        summarize(t, n_clusters=2)
    with pytest.raises(ValueError, match=r"requires grad; pass tensor.detach\(\)"):
        ExpressionKNN(k=3).fit(t, ["a", "b"] * 3)
    got = summarize(t.detach(), n_clusters=2)  # the fix it names works
    assert len(got.clusters) == 2


def test_a_reference_set_that_is_a_zip_bomb_is_refused_unread(tmp_path: Path) -> None:
    """A 2.5 MB file unpacked to 5.3 GB before its row count was checked; here 300 MB of
    zeros packed to about 300 KB."""
    import tracemalloc
    import zipfile

    from exprsim.apps.classify import load_reference_set

    path = tmp_path / "bomb.npz"
    rows = 300 * 2**20 // 64
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 16), np.float32))
    header["shape"] = (rows, 16)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("embeddings.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, header)
        block = bytes(1 << 20)
        for _ in range(rows * 16 * 4 // len(block)):
            f.write(block)
    assert path.stat().st_size < 1 << 20
    grouped = tmp_path / "grouped.npz"  # review: labels grouped by class pack to 1:700
    emb = np.zeros((1000, 16), np.float32)
    np.savez_compressed(grouped, labels=np.repeat(np.arange(8), 2_200_000 // 8).astype(np.int64))
    with zipfile.ZipFile(grouped) as z:
        assert z.infolist()[0].file_size > 16 << 20  # past the first version's floor
    from exprsim.apps.classify import _refuse_bombs

    _refuse_bombs(grouped)  # not refused
    del emb
    tracemalloc.start()
    try:
        with pytest.raises(ExprsimError, match="unpacks to"):
            load_reference_set(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_the_pipeline_reads_an_array_without_copying_it() -> None:
    """Review: analyze_image went through load_image, which now copies: every analysed
    frame was copied once more (0.8 ms a 1080p frame)."""
    from exprsim.faces.pipeline import analyze_image

    seen = []

    class Detector:
        name = "spy"

        def detect(self, image):
            seen.append(image)
            return []

    frame = np.zeros((40, 50, 3), np.uint8)
    assert analyze_image(frame, Detector()) == []
    assert seen[0] is frame or np.shares_memory(seen[0], frame)


def test_pyarrow_column_names_count_too() -> None:
    pa = pytest.importorskip("pyarrow")
    names = [f"e{i}" for i in range(16)]
    knn, df, y = _fitted(names)
    table = pa.Table.from_pandas(df)
    knn.fit(table, y)
    assert list(knn.feature_names_in_) == names
    with pytest.raises(ValueError, match="same order as they were in fit"):
        knn.predict(table.select(sorted(names)))
    mixed = df.rename(columns={"e0": 0})
    with pytest.raises(TypeError, match="only supported if all input features have string"):
        ExpressionKNN(k=3).fit(mixed, y)
