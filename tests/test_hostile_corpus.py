"""The hostile-input corpus (tests/corpus.py) through the image loader, the Python API and
every CLI command that takes images: typed errors, one line per bad file, good files still
processed, no traceback, no partial output."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from exprsim.cli import main
from exprsim.errors import ImageError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import bad_names, image_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, bool]]:
    root = tmp_path_factory.mktemp("hostile") / "corpus"
    return root, image_corpus(root)


def _names() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return sorted(image_corpus(Path(tmp) / "c"))


CASE_NAMES = _names()


@pytest.mark.parametrize("name", CASE_NAMES)
def test_load_image_reads_or_refuses_with_a_typed_error(corpus, name):
    from exprsim.io import load_image

    root, cases = corpus
    path = root / name
    if cases[name]:
        img = load_image(path)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert min(img.shape[:2]) >= 1
    else:
        with pytest.raises(ImageError) as exc:
            load_image(path)
        assert str(exc.value).startswith(str(path)) and "\n" not in str(exc.value)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bytes_input_matches_path_input(corpus, name):
    from exprsim.io import load_image

    root, cases = corpus
    path = root / name
    if not path.exists():
        pytest.skip("a broken link has no bytes")
    data = path.read_bytes()
    if cases[name]:
        np.testing.assert_array_equal(load_image(data), load_image(path))
    else:
        with pytest.raises(ImageError):
            load_image(data)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["-q", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _check_bad_files_reported(err: str, cases: dict[str, bool]) -> None:
    assert "Traceback" not in err
    for name in bad_names(cases):
        shown = Path(name).name
        lines = [line for line in err.splitlines() if shown in line]
        assert len(lines) == 1, (shown, lines)


COMMANDS = {
    "faces": lambda root, tmp, model: ["faces", str(root), "--out", str(tmp / "f.csv")],
    "embed": lambda root, tmp, model: [
        "embed",
        str(root),
        "-o",
        str(tmp / "e.csv"),
        "--model",
        model,
    ],
    "index add": lambda root, tmp, model: [
        "index",
        "add",
        str(root),
        "--db",
        str(tmp / "x.db"),
        "--model",
        model,
    ],
    "summarize": lambda root, tmp, model: [
        "summarize",
        str(root),
        "-n",
        "3",
        "--model",
        model,
        "--out",
        str(tmp / "s.csv"),
    ],
    "tag": lambda root, tmp, model: [
        "tag",
        str(root),
        "--db",
        str(tmp / "t.db"),
        "--model",
        model,
    ],
    "classify": lambda root, tmp, model: [
        "classify",
        str(root),
        "--reference",
        str(tmp / "ref.npz"),
        "--model",
        model,
        "--out",
        str(tmp / "c.csv"),
    ],
}


def _reference(path: Path) -> None:
    from exprsim.apps.classify import ReferenceSet
    from exprsim.data.fer import FERPLUS_CLASSES

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((50, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ReferenceSet(emb, rng.integers(0, 8, 50), FERPLUS_CLASSES, "exprnet_s@test", 7).save(path)


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_survives_the_corpus(corpus, command, random_model_dir, tmp_path, capsys):
    root, cases = corpus
    if command == "tag":  # tagging needs a reference first
        rc, _, err = _run(capsys, "tag", "add", "smile", str(root / "good_face.jpg"),
                          "--db", str(tmp_path / "t.db"), "--model", str(random_model_dir))  # fmt: skip
        assert rc == 0, err
    if command == "classify":
        _reference(tmp_path / "ref.npz")
    rc, out, err = _run(capsys, *COMMANDS[command](root, tmp_path, str(random_model_dir)))
    assert rc == 0, err  # good files were processed, so the job succeeds
    _check_bad_files_reported(err, cases)
    written = list(tmp_path.glob("*.csv"))
    assert command in ("index add", "tag") or written, out


@pytest.mark.slow
def test_embed_images_api_skips_and_collects(corpus, random_model_dir):
    from exprsim.models.embedder import load_model

    root, cases = corpus
    model = load_model(str(random_model_dir))
    files = [root / n for n in sorted(cases)]
    failures: list[ImageError] = []
    faces = model.embed_images(files, failures=failures)
    assert sorted(Path(f.path).name for f in failures) == sorted(
        Path(n).name for n in bad_names(cases)
    )
    assert {Path(f.source).name for f in faces} >= {"good_face.jpg", "many_faces.jpg"}
    assert sum(f.source.endswith("many_faces.jpg") for f in faces) >= 2
    with pytest.raises(ImageError):
        model.embed_images(files)  # without a failures list, the first bad file raises


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in CASE_NAMES if n.startswith(("trunc", "empty", "bomb",
                                  "random", "broken", "text", "good_face"))])  # fmt: skip
def test_search_with_a_hostile_query(corpus, name, random_model_dir, tmp_path, capsys):
    from exprsim.samples import sample_path

    root, cases = corpus
    db = str(tmp_path / "q.db")
    rc, _, err = _run(capsys, "index", "add", str(sample_path("grace_hopper.jpg")), "--db", db,
                      "--model", str(random_model_dir))  # fmt: skip
    assert rc == 0, err
    rc, out, err = _run(capsys, "search", str(root / name), "--db", db, "--model",
                        str(random_model_dir), "--include-same-image")  # fmt: skip
    assert "Traceback" not in err
    if cases[name]:
        assert rc == 0 and "grace_hopper" in out
    else:
        assert rc == 2 and len(err.strip().splitlines()) == 1 and name in err


def test_corpus_size_is_at_least_200_cases():
    """Each corpus file goes through the loader twice (path, bytes) and through the six
    album commands: more than 200 (input, entry point) cases."""
    assert len(CASE_NAMES) * (2 + len(COMMANDS)) >= 200
