"""Round 36 (an audit of every deletion and overwrite): an output is refused, before any
work, when it names a FER+ data file a command reads (`classify --evaluate`, `tag
calibrate`, `subclasses --fer`; `evaluate` refused it already) or a file of the model
folder given with --model (`embed`, `summarize`, `search`, `classify`, `video`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_run import digest, one_line, run

from exprsim.models.embedder import _weights_dir
from exprsim.samples import sample_path

PHOTO = str(sample_path("grace_hopper.jpg"))


@pytest.fixture
def fer(tmp_path: Path) -> Path:
    folder = tmp_path / "fer"
    folder.mkdir()
    for name in ("fer2013.csv", "fer2013new.csv"):
        (folder / name).write_text("emotion,pixels,Usage\n")  # left as it is
    return folder


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "mymodel"
    shutil.copytree(_weights_dir("default"), folder)
    return folder


@pytest.mark.parametrize(
    "argv",
    [
        ["classify", "--evaluate", "--data-dir", "{fer}", "-o", "{fer}/fer2013new.csv"],
        ["tag", "calibrate", "--data-dir", "{fer}", "-o", "{fer}/fer2013new.csv"],
        ["subclasses", "--fer", "PublicTest", "--data-dir", "{fer}", "--json", "{fer}/fer2013.csv"],
    ],
    ids=["classify-evaluate", "tag-calibrate", "subclasses-fer"],
)
def test_an_output_over_a_fer_data_file_is_refused(capsys, fer: Path, argv: list[str]) -> None:
    before = {f.name: digest(f) for f in fer.iterdir()}
    rc, _, err = run(capsys, *(a.format(fer=fer) for a in argv))
    assert rc == 2
    assert "is a FER+ data file" in one_line(err) and "nothing was done" in err
    assert {f.name: digest(f) for f in fer.iterdir()} == before


@pytest.mark.parametrize(
    "argv",
    [
        ["embed", PHOTO, "--model", "{m}", "-o", "{m}/config.json"],
        ["summarize", PHOTO, "--model", "{m}", "--html", "{m}/model.safetensors"],
        ["classify", PHOTO, "--model", "{m}", "-o", "{m}/config.json"],
        ["search", PHOTO, "--db", "{m}/../f.db", "--model", "{m}", "-o", "{m}/config.json"],
    ],
    ids=["embed", "summarize", "classify", "search"],
)
def test_an_output_over_a_file_of_the_model_is_refused(
    capsys, model: Path, argv: list[str]
) -> None:
    before = {f.name: digest(f) for f in model.iterdir()}
    rc, _, err = run(capsys, *(a.format(m=model) for a in argv))
    assert rc == 2
    assert f"is a file of the model {model}" in one_line(err)
    assert {f.name: digest(f) for f in model.iterdir()} == before


def test_other_files_in_the_model_folder_are_outputs_like_any_other(capsys, model: Path) -> None:
    out = model / "embeddings.csv"
    for _ in range(2):  # the second run replaces the first one's table
        rc, _, err = run(capsys, "embed", PHOTO, "--model", str(model), "-o", str(out))
        assert rc == 0, err
    assert out.read_text().startswith("source,")
