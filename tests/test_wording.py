"""exprsim.wording.count, and a summary line that uses it."""

from __future__ import annotations

from exprsim.index.store import AddReport, FileOutcome
from exprsim.wording import count


def test_count_is_singular_for_one_only() -> None:
    assert [count(n, "face") for n in (0, 1, 2)] == ["0 faces", "1 face", "2 faces"]
    assert count(1, "person", "people") == "1 person" and count(3, "person", "people") == "3 people"


def test_an_add_summary_of_one_file_reads_in_the_singular() -> None:
    report = AddReport((FileOutcome("/a.jpg", "added", 1),), "m@1", 0.5)
    text = report.summary()
    assert text.startswith("1 file added, 0 updated") and "; 1 face stored in" in text, text
