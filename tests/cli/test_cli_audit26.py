"""Round 26 (docs/robustness.md): outputs of the CLI."""

from __future__ import annotations

import pytest

from exprsim.cli import main


def test_evaluate_json_never_replaces_a_file_of_the_fec_crops(tmp_path, capsys):
    fetch = tmp_path / "fetch"
    (fetch / "crops").mkdir(parents=True)
    index = fetch / "crops" / "index.sqlite"
    shard = fetch / "crops" / "shard-00000.npy"
    for f in (index, shard, fetch / "manifest.sqlite"):
        f.write_bytes(b"crops that took hours to fetch")
    csv = tmp_path / "test.csv"
    csv.write_text("")
    for target in (index, shard, fetch / "manifest.sqlite"):
        argv = ["evaluate", "--fec-test", str(csv), "--fec-crops", str(fetch)]
        assert main([*argv, "--json", str(target)]) == 2
        assert "it would be overwritten" in capsys.readouterr().err
        assert target.read_bytes() == b"crops that took hours to fetch"


def test_fec_stats_json_is_strict_json_when_a_type_is_missing(tmp_path, capsys):
    import json

    u = "http://farm1.staticflickr.com/1/{}_b.jpg"
    row = ",".join(f'"{u.format(k)}",0.1,0.5,0.2,0.6' for k in "abc")
    csv = tmp_path / "one.csv"
    csv.write_text(row + ",ONE_CLASS_TRIPLET,11,1,12,1,13,1,14,1,15,2,16,3\n")
    main(["fec", "stats", str(csv), "--json"])
    text = capsys.readouterr().out
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert doc  # was 12 bare NaN tokens (two and three shares, the human baseline)
    assert "NaN" not in text


def test_video_out_refuses_a_folder_of_files_no_video_run_wrote(tmp_path, capsys):
    from exprsim.samples import sample_path

    out = tmp_path / "work"
    out.mkdir()
    (out / "faces.csv").write_text("mine\n")
    rc = main(["video", str(sample_path("langer_clip.mp4")), "--out", str(out), "-q"])
    assert rc == 2 and "no exprsim video run wrote them" in capsys.readouterr().err
    assert (out / "faces.csv").read_text() == "mine\n"  # was replaced without a word


def test_demo_refuses_a_folder_of_files_no_demo_wrote(tmp_path, capsys):
    out = tmp_path / "work"
    out.mkdir()
    (out / "index.html").write_text("my page")
    assert main(["demo", "--out", str(out), "-q"]) == 2
    assert "no demo wrote them" in capsys.readouterr().err
    assert (out / "index.html").read_text() == "my page"


def test_success_lines_print_output_names_escaped(tmp_path, capsys):
    import shutil

    from exprsim.samples import sample_path

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(sample_path("grace_hopper.jpg"), photos / "grace.jpg")
    out = tmp_path / "f\x1b[2Jx.csv"  # a terminal escape in the name
    assert main(["faces", str(photos), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err and "wrote " in err and "\\x1b[2Jx.csv" in err


def test_a_bare_word_that_is_no_action_or_file_is_one_line(tmp_path, capsys):
    rc = main(["tag", "frobnicate", "--db", str(tmp_path / "faces.db")])
    err = capsys.readouterr().err
    assert rc == 2 and "actions: add, list, remove, calibrate" in err
    assert len(err.strip().splitlines()) == 1  # was three lines, "no faces found" among them
