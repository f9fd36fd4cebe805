"""FEC CSV parser, rater agreement and human baseline (exprsim.data.fec) on hand-made rows."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import numpy as np
import pytest

from exprsim.cli import main
from exprsim.data.fec import (
    Agreement,
    TripletType,
    agreement_from_votes,
    fec_stats,
    human_baseline,
    majority_from_votes,
    parse_fec_csv,
    write_fec_csv,
)
from exprsim.errors import DataError

U = "http://farm1.staticflickr.com/1/{}_b.jpg"


def _line(
    urls=("a", "b", "c"),
    box="0.1,0.5,0.2,0.6",
    ttype="ONE_CLASS_TRIPLET",
    ann="11,1,12,1,13,1,14,1,15,2,16,3",
):
    faces = ",".join(f'"{U.format(u)}",{box}' for u in urls)
    return f"{faces},{ttype},{ann}"


# --------------------------------------------------------------------------- parsing


def test_parses_official_layout(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text(
        _line(box="0.25,0.75,0.1,0.9")
        + "\n"
        + _line(("c", "d", "e"), ttype="THREE_CLASS_TRIPLET", ann="21,3,22,3,23,3,24,3,25,1,26,1")
        + "\n"
    )
    t = parse_fec_csv(p)
    assert len(t) == 2 and t.report.ok and t.report.n_parsed == 2
    r = t[0]
    assert r.line == 1
    assert r.faces[0].url == U.format("a")
    # the CSV order is x1, x2, y1, y2 (columns, then rows)
    assert r.faces[0].box.as_tuple() == (0.25, 0.75, 0.1, 0.9)
    assert r.faces[0].box.to_pixels(200, 100) == (50.0, 10.0, 150.0, 90.0)
    assert r.ttype is TripletType.ONE and t[1].ttype is TripletType.THREE
    assert [a.rater for a in r.annotations] == ["11", "12", "13", "14", "15", "16"]
    assert [a.label for a in r.annotations] == [1, 1, 1, 1, 2, 3]
    assert r.votes.tolist() == [4, 1, 1] and r.odd == 0 and r.agreement is Agreement.STRONG
    assert t[1].odd == 2
    assert len(t.urls) == 5  # "c" is shared by both rows
    ids, faces = t.face_ids()
    assert ids.shape == (2, 3) and len(faces) == 6  # same URL "c", different boxes
    df = t.to_frame()
    assert list(df["type"]) == ["one", "three"] and list(df["odd"]) == [0, 2]


def test_round_trip_through_writer(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text(_line() + "\n")
    t = parse_fec_csv(p)
    q = write_fec_csv(list(t), tmp_path / "b.csv")
    t2 = parse_fec_csv(q)
    assert t2.to_frame().equals(t.to_frame())
    assert q.read_text().startswith(f"{U.format('a')},0.1,0.5,0.2,0.6,")


def test_malformed_rows_reported_with_line_numbers(tmp_path: Path) -> None:
    good = _line()
    lines = [
        good,  # 1
        "",  # 2 blank: counted, not an issue
        good.replace("ONE_CLASS_TRIPLET", "FOUR_CLASS_TRIPLET"),  # 3
        good.rsplit(",", 2)[0],  # 4 too few fields
        good.replace("0.1,0.5,0.2,0.6", "0.5,0.1,0.2,0.6", 1),  # 5 x1 > x2
        good.replace("0.1,0.5,0.2,0.6", "abc,0.5,0.2,0.6", 1),  # 6 not a number
        good.replace("15,2,16,3", "15,2,16,4"),  # 7 label 4
        good.replace("15,2,16,3", "15,2,,3"),  # 8 empty rater id
        good.replace("0.1,0.5,0.2,0.6", "0.1,1.5,0.2,0.6", 1),  # 9 outside [0, 1]
        good.replace(f'"{U.format("a")}"', '""', 1),  # 10 empty URL
        '"' + good.replace('"', ""),  # 12: unterminated quote, runs to the end of the file
    ]
    p = tmp_path / "bad.csv"
    p.write_text("\n".join(lines[:-1]) + "\n" + good + "\n" + lines[-1] + "\n")
    t = parse_fec_csv(p)
    assert len(t) == 2  # line 1 and the good copy on line 11
    assert t.line.tolist() == [1, 11]
    got = {i.line: i.reason for i in t.issues}
    assert sorted(got) == [3, 4, 5, 6, 7, 8, 9, 10, 12]
    assert "unknown triplet type" in got[3]
    assert "expected 28 fields, found 26" in got[4]
    assert "empty box" in got[5]
    assert "not a number" in got[6]
    assert "label '4'" in got[7]
    assert "empty rater id" in got[8]
    assert "outside [0, 1]" in got[9]
    assert "URL" in got[10]
    assert t.report.n_blank == 1 and t.report.n_rows == 11
    assert t.report.to_frame()["line"].tolist() == sorted(got)
    with pytest.raises(DataError, match="line 3"):
        parse_fec_csv(p, strict=True)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such FEC CSV"):
        parse_fec_csv(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- agreement


def _paper_agreement(labels: tuple[int, ...]) -> str:
    """Paper Sec. 3.1, read literally, for six raters."""
    counts = [labels.count(k) for k in (1, 2, 3)]
    top = max(counts)
    if top >= 4:  # at least two thirds of six voted for the maximum-voted label
        return "strong"
    if counts.count(top) == 1 and top == 3:  # unique maximum, half of the raters
        return "weak"
    return "none"


def test_agreement_matches_paper_definition_for_every_vote_pattern() -> None:
    patterns = list(itertools.product((1, 2, 3), repeat=6))
    votes = np.array([[p.count(k) for k in (1, 2, 3)] for p in patterns])
    got = agreement_from_votes(votes)
    want = [_paper_agreement(p) for p in patterns]
    assert [Agreement(int(g)).short for g in got] == want
    # hand-checked cases
    assert Agreement(int(agreement_from_votes(np.array([[4, 1, 1]]))[0])) is Agreement.STRONG
    assert Agreement(int(agreement_from_votes(np.array([[3, 2, 1]]))[0])) is Agreement.WEAK
    assert Agreement(int(agreement_from_votes(np.array([[3, 3, 0]]))[0])) is Agreement.NONE
    assert Agreement(int(agreement_from_votes(np.array([[2, 2, 2]]))[0])) is Agreement.NONE
    assert majority_from_votes(np.array([[1, 4, 1], [3, 3, 0]])).tolist() == [1, -1]


# --------------------------------------------------------------------------- human baseline


def _hand_table(tmp_path: Path):
    rows = [
        ("ONE_CLASS_TRIPLET", "A,1,B,1,C,1,D,1,E,2,F,3"),  # strong: A-D right, E, F wrong
        ("TWO_CLASS_TRIPLET", "A,2,B,2,C,2,D,2,E,2,F,1"),  # strong: A-E right, F wrong
        ("THREE_CLASS_TRIPLET", "A,3,B,3,C,3,D,1,E,1,F,3"),  # strong 4-2: D, E wrong
        ("TWO_CLASS_TRIPLET", "A,1,B,1,C,1,D,2,E,2,F,3"),  # weak 3-2-1
    ]
    p = tmp_path / "h.csv"
    p.write_text("".join(_line(ttype=t, ann=a) + "\n" for t, a in rows))
    return parse_fec_csv(p)


def test_human_baseline_hand_computed(tmp_path: Path) -> None:
    t = _hand_table(tmp_path)
    h = human_baseline(t)  # strong triplets, leave one out (paper)
    acc = {r.rater: (r.correct, r.n) for r in h.raters}
    assert acc == {"A": (3, 3), "B": (3, 3), "C": (3, 3), "D": (2, 3), "E": (1, 3), "F": (1, 3)}
    assert h.n_triplets == 3 and h.n_ties == 0
    assert h.median == pytest.approx((1 + 2 / 3) / 2)  # per-rater accs 1, 1, 1, 2/3, 1/3, 1/3
    assert h.mean == pytest.approx(13 / 18) and h.pooled == pytest.approx(13 / 18)
    assert h.by_type["one"]["median"] == 1.0 and h.by_type["one"]["mean"] == pytest.approx(4 / 6)
    assert h.by_type["three"]["mean"] == pytest.approx(4 / 6)
    # all triplets, leave one out: on the weak row A, B, C face a 2-2 tie of the others
    h_all = human_baseline(t, agreement=None)
    assert h_all.n_ties == 3
    acc_all = {r.rater: (r.correct, r.n) for r in h_all.raters}
    assert acc_all["A"] == (3, 3) and acc_all["D"] == (2, 4) and acc_all["F"] == (1, 4)
    # all triplets, majority of all six: the weak row's majority is 1 (3 of 6)
    h_six = human_baseline(t, agreement=None, leave_one_out=False)
    assert h_six.n_ties == 0
    assert {r.rater: (r.correct, r.n) for r in h_six.raters}["A"] == (4, 4)


def test_leave_one_out_equals_paper_on_strong_triplets(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(200):
        lab = rng.integers(1, 4, size=6)
        raters = rng.choice(12, size=6, replace=False)
        ttype = ("ONE", "TWO", "THREE")[int(rng.integers(3))]
        ann = ",".join(f"r{r},{v}" for r, v in zip(raters, lab, strict=True))
        lines.append(_line(ttype=f"{ttype}_CLASS_TRIPLET", ann=ann))
    p = tmp_path / "r.csv"
    p.write_text("\n".join(lines) + "\n")
    t = parse_fec_csv(p)
    loo, six = human_baseline(t, leave_one_out=True), human_baseline(t, leave_one_out=False)
    assert loo.n_triplets == int((t.agreement() == 2).sum()) > 0
    assert loo.raters == six.raters and loo.median == six.median
    # slow reference: per rater, share of strong triplets where they chose the majority label
    per: dict[str, list[int]] = {}
    for r in t:
        if r.agreement is not Agreement.STRONG:
            continue
        for a in r.annotations:
            per.setdefault(a.rater, []).append(int(a.label - 1 == r.odd))
    assert loo.median == pytest.approx(statistics.median(sum(v) / len(v) for v in per.values()))


# --------------------------------------------------------------------------- stats + CLI


def test_stats_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = _hand_table(tmp_path)
    s = fec_stats(t)
    assert s.rows == 4 and s.types == {"one": 1, "two": 2, "three": 1}
    assert s.agreement["all"] == {"strong": 3, "weak": 1, "none": 0}
    assert s.agreement["two"] == {"strong": 1, "weak": 1, "none": 0}
    assert s.shares()["all"]["strong"] == pytest.approx(0.75)
    assert s.n_urls == 3 and s.n_raters == 6
    assert s.to_frame().set_index("type").loc["all", "strong"] == 3
    bad = tmp_path / "bad.csv"
    bad.write_text(_line() + "\nnot,a,row\n")
    assert main(["fec", "stats", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "rows: 1 triplet (1 malformed" in out and "malformed line 2: expected 28 fields" in out
    assert main(["fec", "stats", str(bad), "--json"]) == 0
    assert '"malformed": 1' in capsys.readouterr().out
    assert main(["fec", "stats", str(tmp_path / "missing.csv")]) == 2
    assert "no such FEC CSV" in capsys.readouterr().err
    only_bad = tmp_path / "only_bad.csv"
    only_bad.write_text("not,a,row\n")
    assert main(["fec", "stats", str(only_bad)]) == 1  # the report, then exit 1: no triplet
    assert "no valid triplet" in capsys.readouterr().err
