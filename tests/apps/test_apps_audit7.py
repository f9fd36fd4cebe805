"""Audit 7 (the less-travelled commands), findings 3, 8, 9 (subclasses), 10, 11 and 12, and
``classify --build-reference`` on too few faces: each test failed before its fix."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stub_embedder import StubEmbedder

from exprsim.apps import classify as cl
from exprsim.apps.compare import Comparison
from exprsim.apps.subclasses import discover_subexpressions, split_classes, subexpressions_page
from exprsim.apps.summarize import summarize_images, summary_page
from exprsim.cli import main
from exprsim.data.fer import FERPLUS_CLASSES
from exprsim.errors import DataError, ExprsimError, ModelError
from exprsim.samples import sample_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["-q", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def unit_rows(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- 3. classes


@pytest.mark.parametrize(
    ("classes", "match"),
    [
        (("neutral", "neutral", *FERPLUS_CLASSES[2:]), "'neutral' is repeated"),
        (("", *FERPLUS_CLASSES[1:]), "class 0 has a blank name"),
        ((*FERPLUS_CLASSES[:7], "  "), "class 7 has a blank name"),
    ],
)
def test_reference_set_with_repeated_or_blank_class_names_is_refused(
    tmp_path: Path, classes: tuple[str, ...], match: str
) -> None:
    # was: accepted; the p_* columns were a dict by name, so class 0's 0.95 was lost and a
    # face was labelled "neutral" with the confidence of class 1 (or "" for a blank name)
    emb = unit_rows(16).astype(np.float32)
    ref = cl.ReferenceSet(emb, np.arange(16) % 8, classes, "stub@1", 3)
    path = ref.save(tmp_path / "bad.npz")
    with pytest.raises(ModelError, match=match):
        cl.load_reference_set(path)


# ----------------------------------------------------------------------------- noted: K


def _tiny_fer(folder: Path, n_train: int = 6, n_test: int = 2) -> Path:
    """A FER2013 + FER+ pair of ``n_train`` Training and ``n_test`` PublicTest faces."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    fer = ["emotion,pixels,Usage"]
    new = ["Usage,Image name," + ",".join([*FERPLUS_CLASSES, "unknown", "NF"])]
    for r in range(n_train + n_test):
        usage = "Training" if r < n_train else "PublicTest"
        votes = [0] * 10
        votes[r % 4] = 10
        fer.append(f"0,{' '.join(map(str, rng.integers(0, 255, 48 * 48)))},{usage}")
        new.append(f"{usage},fer{r:07d}.png," + ",".join(map(str, votes)))
    (folder / "fer2013.csv").write_text("\n".join(fer) + "\n")
    (folder / "fer2013new.csv").write_text("\n".join(new) + "\n")
    return folder


def test_build_reference_on_too_few_faces_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # was: no K could be scored (no face held out), the set was written with K=11 and the
    # CLI printed pandas' "Empty DataFrame / Columns: [] / Index: []"
    monkeypatch.setenv("EXPRSIM_CACHE", str(tmp_path / "cache"))
    fer = _tiny_fer(tmp_path / "fer")
    stub = StubEmbedder()
    stub.embed_crops = lambda crops: unit_rows(len(crops)).astype(np.float32)  # type: ignore[attr-defined]
    out = tmp_path / "r1.npz"
    with pytest.raises(DataError, match="too few to choose K"):
        cl.build_reference_set(stub, out, data_dir=fer, max_faces=1)
    assert not out.exists()


# ----------------------------------------------------------------------------- 8. sources


def test_subexpressions_json_and_page_name_the_files() -> None:
    x = unit_rows(12)
    names = [f"album/{'ab'[i % 2]}/face{i}.jpg#0" for i in range(12)]
    crops = [np.full((8, 8, 3), 10 * i, np.uint8) for i in range(12)]
    rep = discover_subexpressions(x, np.zeros(12, int), n_components=1, crops=crops, sources=names)
    d = rep.to_dict()["subexpressions"][0]
    # was: only "medoid": 1 and "top": [1, 9, 2, ...], positions in an unwritten face list
    assert d["medoid_source"] == names[d["medoid"]]
    assert d["top_sources"] == [names[t] for t in d["top"]]
    html = subexpressions_page(rep).render()
    assert all(Path(n).name in html for n in names)  # gallery captions, was "medoid", "d=0.41"
    without = discover_subexpressions(x, np.zeros(12, int), n_components=1).to_dict()
    assert "medoid_source" not in without["subexpressions"][0]
    with pytest.raises(ExprsimError, match="sources must name every face"):
        discover_subexpressions(x, np.zeros(12, int), sources=names[:3])


def test_subclasses_cli_json_names_the_input_files(
    tmp_path: Path, random_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    album = tmp_path / "alb"
    album.mkdir()
    for name in ("grace_hopper.jpg", "pexels_langer_frame000.jpg", "pexels_langer_frame144.jpg"):
        shutil.copy(sample_path(name), album / name)
    out = tmp_path / "sc.json"
    rc, _, err = run(capsys, "subclasses", str(album), "--labels", "none", "--model",
                     str(random_model_dir), "--html", str(tmp_path / "sc.html"), "--json", str(out))  # fmt: skip
    assert rc == 0, err
    files = {str(p) for p in album.iterdir()}
    for sub in json.loads(out.read_text())["subexpressions"]:
        assert sub["medoid_source"].split("#")[0] in files
        assert {s.split("#")[0] for s in sub["top_sources"]} <= files


# ----------------------------------------------------------------------------- 9. subclasses


@pytest.mark.parametrize(
    ("flag", "value"), [("--max-faces", "3"), ("--data-dir", "/nonexistent/fer")]
)
def test_subclasses_refuses_fer_only_options_with_paths(
    tmp_path: Path,
    random_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
) -> None:
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(tmp_path / "a.png")
    # was: accepted and ignored ("12 faces" with --max-faces 3)
    rc, _, err = run(capsys, "subclasses", str(tmp_path), "--labels", "none", flag, value,
                     "--model", str(random_model_dir), "--html", str(tmp_path / "p.html"))  # fmt: skip
    assert rc == 2 and f"{flag} is only used with --fer" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "p.html").exists()


# ----------------------------------------------------------------------------- 10. names


def _same_named(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "dA" / "x.png", tmp_path / "dB" / "x.png"
    for p, seed in ((a, 1), (b, 2)):
        p.parent.mkdir()
        pixels = np.random.default_rng(seed).integers(1, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(p)
    return a, b


def test_summary_page_tells_same_named_files_apart(tmp_path: Path) -> None:
    a, b = _same_named(tmp_path)
    summary = summarize_images([a.parent, b.parent], embedder=StubEmbedder(), n_clusters=2)
    html = summary_page(summary).render()
    # was: "x.png face 0" twice in the representatives' table
    assert f"{a} face 0" in html and f"{b} face 0" in html


def test_classification_page_tells_same_named_files_apart(tmp_path: Path) -> None:
    a, b = _same_named(tmp_path)
    crop = np.zeros((8, 8, 3), np.uint8)
    proba = {c: 1.0 / len(FERPLUS_CLASSES) for c in FERPLUS_CLASSES}
    faces = tuple(
        cl.FacePrediction(str(p), 0, "neutral", proba, True, crop)
        for p in (a, b, a.parent / "y.png")
    )
    html = cl.classification_page(cl.ClassificationResult(faces, "stub@1", 3)).render()
    assert f"{a}#0: neutral" in html and f"{b}#0: neutral" in html  # was "x.png#0" twice
    from exprsim.apps.compare import display_names

    assert display_names(["d/x.png", "d/y.png", "d/x.png"]) == ["x.png", "y.png", "x.png"]
    assert display_names(["a/x.png", "b/x.png"]) == ["a/x.png", "b/x.png"]


# ----------------------------------------------------------------------------- 11. API checks


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x, y: split_classes(x, y, max_components=2.5), "max_components must be an integer"),
        (lambda x, y: discover_subexpressions(x, y, top_k=2.5), "top_k must be an integer"),
        (lambda x, y: split_classes(x, y, seed=-1), r"seed must be a whole number in \[0, "),
        (lambda x, y: split_classes(x, y, seed=2**32), "seed must be a whole number"),
        (lambda x, y: split_classes(x, y, seed=1.5), "seed must be a whole number"),
        (lambda x, y: split_classes(x, y, n_init=0), "n_init must be an integer >= 1"),
        (
            lambda x, y: split_classes(x, y, n_components=2.7, min_per_component=1),
            "n_components must be an integer",
        ),
        (lambda x, y: split_classes(x, y, n_components=True), "n_components must be an integer"),
        (lambda x, y: split_classes(x, y, n_components=1, stride=0), "stride must be an integer"),
        (lambda x, y: split_classes(x, y, min_per_component=2.0), "min_per_component must be"),
    ],
)
def test_subexpression_settings_are_checked(call, match: str) -> None:
    x = np.random.default_rng(0).normal(size=(60, 16))
    y = np.repeat([0, 3], 30)
    # was: TypeError, sklearn's InvalidParameterError, or silently truncated / taken as 1
    with pytest.raises(ExprsimError, match=match):
        call(x, y)


def test_subexpression_settings_take_numpy_integers() -> None:
    x = np.random.default_rng(0).normal(size=(60, 16))
    split = split_classes(x, np.repeat([0, 3], 30), n_components=np.int64(2), seed=np.uint32(7))
    assert split.n_components == {0: 2, 3: 2}


# ----------------------------------------------------------------------------- 12. compare


def test_comparison_json_distances_have_four_decimals() -> None:
    d = np.array([[0.0, 1.2127], [1.2127, 0.0]], np.float32)
    doc = Comparison(("a.jpg", "b.jpg"), np.zeros((2, 16), np.float32), d, None).to_dict()
    assert doc["distances"] == [[0.0, 1.2127], [1.2127, 0.0]]  # was 1.2127000093460083
    assert "1.2127000" not in json.dumps(doc)


def test_compare_prints_odd_names_on_one_line(
    tmp_path: Path, random_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "new\nline.jpg"
    shutil.copy(sample_path("grace_hopper.jpg"), odd)
    other = str(sample_path("astronaut_eileen_collins.jpg"))
    model = ["--model", str(random_model_dir)]
    rc, out, _ = run(capsys, "compare", str(odd), other, *model)
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == 3 and lines[1].startswith("new\\nline.jpg")  # was split over two lines
    rc, out, _ = run(capsys, "compare", "--json", str(odd), other, *model)
    assert rc == 0 and not re.search(r"\d\.\d{5,}", out)  # rounded to 1e-4, as documented
