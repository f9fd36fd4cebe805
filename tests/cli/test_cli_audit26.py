"""Round 26 (docs/robustness.md): outputs of the CLI."""

from __future__ import annotations

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
