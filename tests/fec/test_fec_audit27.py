"""Round 27 (docs/robustness.md): two fetches into one folder at once."""

from __future__ import annotations

import pytest

from exprsim.errors import DataError
from exprsim.fec.fetch import FetchConfig, fetch_fec


def test_a_second_fetch_into_a_busy_folder_is_refused(fec_csvs, tmp_path) -> None:
    train, _ = fec_csvs
    out = tmp_path / "fec-data"
    refused: list[str] = []

    def start_another(result) -> None:
        if refused:
            return
        # was: the second one removed the first one's unfinished files (its os.replace
        # failed: the first run ended with a traceback-like error), and ran on
        with pytest.raises(DataError, match="another `exprsim fec fetch`") as info:
            fetch_fec(train, out, FetchConfig(retries=0, workers=1), progress=False)
        refused.append(str(info.value))

    cfg = FetchConfig(retries=0, workers=2, backoff=0.01)
    report = fetch_fec(train, out, cfg, progress=False, on_result=start_another)
    assert len(refused) == 1 and "\n" not in refused[0]
    assert report.n_attempted == report.n_urls and not report.interrupted
    again = fetch_fec(train, out, cfg, progress=False)  # free again
    assert again.n_ok >= report.n_ok  # a transient failure may be fetched now


@pytest.mark.parametrize("n", [1, 3])
def test_a_run_stopped_for_no_network_counts_what_it_says(tmp_path, n) -> None:
    import re

    from .test_fec_audit21 import _closed_port, _csv

    refused = f"http://127.0.0.1:{_closed_port()}"
    urls = [f"{refused}/{i}.jpg" for i in range(9)]
    cfg = FetchConfig(workers=2, timeout=1.0, retries=0, max_connect_failures=n)
    rep = fetch_fec(_csv(tmp_path / "n.csv", urls), tmp_path / "o", cfg, progress=False)
    said = re.search(r"(\d+) downloads? in a row", rep.stopped or "")
    assert said is not None, rep.stopped
    # was: "3 downloads in a row" with 4 failed (one in flight), and "1 downloads"
    assert int(said.group(1)) == rep.errors["connection"] == rep.n_failed
    assert ("1 download in a row" in rep.stopped) == (rep.n_failed == 1)
    text = rep.to_text()
    assert "(stopped)" in text and "(interrupted)" not in text  # was "(interrupted)"


def test_fec_crop_of_a_csv_without_a_valid_triplet_leaves_no_store(tmp_path, capsys):
    from exprsim.cli import main
    from exprsim.fec.fetch import open_manifest

    with open_manifest(tmp_path / "data"):
        pass
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["fec", "crop", str(empty), "--data", str(tmp_path / "data"), "-q"]) == 1
    assert "no valid triplet" in capsys.readouterr().err
    assert not (tmp_path / "data" / "crops").exists()  # was: an empty crops store made
    (tmp_path / "data" / "crops").mkdir()  # one the user made stays
    assert main(["fec", "crop", str(empty), "--data", str(tmp_path / "data"), "-q"]) == 1
    assert (tmp_path / "data" / "crops").is_dir()
