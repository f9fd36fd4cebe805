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
