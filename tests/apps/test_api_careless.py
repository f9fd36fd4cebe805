"""The Python API called carelessly: single inputs where lists are expected, ambiguous arrays,
NaN, bad hyper-parameters, names with odd bytes or a dollar sign (the fourth robustness
round, docs/robustness.md)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from exprsim.errors import ExprsimError, ImageError, ModelError


def test_as_inputs_wraps_single_inputs():
    from exprsim.io import as_inputs

    img = np.zeros((8, 9, 3), np.uint8)
    assert as_inputs("a.jpg") == ["a.jpg"] and as_inputs(Path("a")) == [Path("a")]
    assert as_inputs(b"\xff\xd8") == [b"\xff\xd8"]
    assert len(as_inputs(img)) == 1 and len(as_inputs(img[..., 0])) == 1
    assert len(as_inputs(np.zeros((4, 8, 9, 3), np.uint8))) == 4  # a stack
    assert as_inputs(x for x in "ab") == ["a", "b"] and as_inputs(("a", "b")) == ["a", "b"]


def test_iter_image_files_takes_one_path(tmp_path, monkeypatch):
    from exprsim.io import iter_image_files

    (tmp_path / "a.jpg").write_bytes(b"x")
    walked: list[str] = []
    real = Path.rglob
    monkeypatch.setattr(
        Path, "rglob", lambda self, pat: walked.append(str(self)) or real(self, pat)
    )
    assert list(iter_image_files(str(tmp_path / "a.jpg"))) == [tmp_path / "a.jpg"]
    assert walked == []  # "/" (the first character) used to be walked: the whole disk


def test_printable_names():
    from exprsim.errors import printable

    assert printable("plain é.jpg") == "plain é.jpg"
    assert printable(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"
    assert printable("a\nb\tc.jpg") == "a\\nb\\tc.jpg"
    assert ImageError(os.fsdecode(b"x\xff.png"), "bad").path == "x\\xff.png"


def test_float_images_above_one_warn_and_masks_are_black_and_white(caplog):
    from exprsim.io import as_rgb8

    with caplog.at_level(logging.WARNING, logger="exprsim.io"):
        out = as_rgb8(np.full((2, 2, 3), 128.0, np.float32))
    assert out[0, 0, 0] == 255 and "divide by 255" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="exprsim.io"):
        as_rgb8(np.full((2, 2, 3), 0.5, np.float32))
    assert caplog.text == ""  # 0..1 floats are what the docstring asks for
    mask = np.array([[True, False]])
    assert as_rgb8(mask)[0, :, 0].tolist() == [255, 0]


def test_embedder_refuses_ambiguous_crops_and_bad_settings(random_embedder):
    from exprsim.models.embedder import Embedder

    one = np.zeros((48, 48, 3), np.uint8)
    with pytest.raises(ModelError, match="look like one"):
        random_embedder.embed_crops(one)  # was 48 "crops" 3 pixels wide
    assert random_embedder.embed_crops(one[None]).shape == (1, 16)
    assert random_embedder.embed_crops(np.zeros((2, 48, 48), np.uint8)).shape == (2, 16)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ModelError, match="batch_size"):
            Embedder(random_embedder.model, random_embedder.config, batch_size=bad)
    for device in ("gpu", "tpu:0", ""):
        with pytest.raises(ModelError, match="device"):
            Embedder(random_embedder.model, random_embedder.config, device=device)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA"):
            Embedder(random_embedder.model, random_embedder.config, device="cuda")


def test_embed_images_takes_one_image(random_embedder):
    from exprsim.samples import sample_path

    path = sample_path("grace_hopper.jpg")
    from exprsim.io import load_image

    img = load_image(path)
    by_list = random_embedder.embed_images([img])
    assert len(by_list) == 1
    for single in (img, str(path), Path(path)):
        got = random_embedder.embed_images(single)
        assert len(got) == 1
        np.testing.assert_allclose(got[0].embedding, by_list[0].embedding, atol=1e-6)


def test_knn_checks_its_parameters_and_queries():
    from exprsim.apps.classify import ExpressionKNN

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)), np.arange(20) % 2
    for params in ({"k": 0}, {"k": 2.5}, {"metric": "manhattan"}, {"weights": "rank"}):
        with pytest.raises(ExprsimError):
            ExpressionKNN(**params).fit(x, y)  # at fit, not at the first prediction
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ExprsimError, match="NaN"):
        ExpressionKNN().fit(bad, y)
    knn = ExpressionKNN(k=3).fit(x, y)
    with pytest.raises(ExprsimError, match="NaN"):
        knn.predict_proba(np.full((1, 4), np.nan))  # was [0.67, 0.33]
    with pytest.raises(ExprsimError, match=r"\(M, 4\)"):
        knn.predict_proba(np.zeros((1, 5)))


def test_match_tags_and_summarize_refuse_inconsistent_arguments():
    from exprsim.apps.summarize import summarize
    from exprsim.apps.tag import match_tags

    refs = np.eye(16)[:2]
    with pytest.raises(ExprsimError, match="one name per reference"):
        match_tags(np.eye(16)[:1], refs, ["only one"])
    with pytest.raises(ExprsimError, match="one name per reference"):
        match_tags(np.eye(16)[:1], refs, "ab")
    with pytest.raises(ExprsimError, match="16 values, references of 8"):
        match_tags(np.eye(16)[:1], np.eye(8)[:2], ["a", "b"])
    emb = np.eye(16)[:5]
    for n in (2.5, True, "3"):
        with pytest.raises(ExprsimError, match="n_clusters"):
            summarize(emb, n_clusters=n)
    assert len(summarize(emb, n_clusters=np.int64(2)).clusters) == 2


def test_compare_takes_a_generator(random_embedder):
    from exprsim.apps.compare import compare_images
    from exprsim.samples import sample_path

    names = ("grace_hopper.jpg", "astronaut_eileen_collins.jpg")
    res = compare_images((sample_path(n) for n in names), embedder=random_embedder)
    assert res.distances.shape == (2, 2)


def test_tag_page_names_the_threshold_used_without_faces():
    from exprsim.apps.tag import tag_page

    page = tag_page([], [], threshold=0.575)
    assert "threshold 0.575" in page.render()


def test_plots_draw_dollar_signs_as_text():
    from exprsim.report import plots

    rng = np.random.default_rng(0)
    e = rng.normal(size=(8, 16))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    # unbalanced or odd TeX: matplotlib's mathtext raised ParseException on these
    png = plots.embedding_map(e, labels=["sales $$ team"] * 4 + ["$\\frac"] * 4, method="pca")
    assert png[:4] == b"\x89PNG"
    assert plots.similarity_heatmap(e[:3], labels=["$x", "a$b$c", "$$"])[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes")
def test_summarize_and_classify_survive_a_name_that_is_not_utf8(tmp_path, capsys):
    from exprsim.cli import main
    from exprsim.samples import sample_path

    album = tmp_path / "album"
    album.mkdir()
    data = Path(sample_path("grace_hopper.jpg")).read_bytes()
    Path(os.fsdecode(bytes(album) + b"/caf\xe9.jpg")).write_bytes(data)
    (album / "ok.jpg").write_bytes(Path(sample_path("astronaut_eileen_collins.jpg")).read_bytes())
    out = tmp_path / "s.csv"
    assert main(["summarize", str(album), "-n", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "caf\\xe9.jpg" in printed and "caf\\xe9.jpg" in out.read_text()
    assert main(["classify", str(album)]) == 0
    assert "caf\\xe9.jpg" in capsys.readouterr().out


def test_folder_labels_name_the_real_folder(tmp_path, monkeypatch, random_embedder):
    import shutil

    from exprsim.apps.labels import label_image_faces
    from exprsim.samples import sample_path

    album = tmp_path / "happy"
    album.mkdir()
    shutil.copy(sample_path("grace_hopper.jpg"), album / "a.jpg")
    monkeypatch.chdir(album)
    faces = label_image_faces(["a.jpg"], random_embedder, "folder")
    assert faces.class_names == ("happy",)  # was "" for a file of the working folder


def test_subclasses_checks_outputs_and_seed_first(tmp_path, capsys):
    from exprsim.cli import main

    missing = tmp_path / "no" / "such" / "page.html"
    assert main(["subclasses", str(tmp_path), "--html", str(missing)]) == 2
    assert "--html" in capsys.readouterr().err  # refused before any face is embedded
    with pytest.raises(SystemExit) as exit_:
        main(["subclasses", str(tmp_path), "--seed", "-1"])  # was a traceback after the work
    assert exit_.value.code == 2
