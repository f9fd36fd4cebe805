"""Round 33: two ``faces --crops C`` runs over one album at once gave a photo two identical
crops (``x_0.png`` from one, ``x-2_0.png`` from the other): the other run's claim of the
name was an empty file, not this photo's. A claim now names its photo."""

from __future__ import annotations

from exprsim.faces.pipeline import _drop_claims, _free_stem, _taken, photo_key


def test_a_claim_of_the_same_photo_by_another_run_is_shared(tmp_path) -> None:
    key = photo_key("/album/x.jpg")
    taken_1 = lambda name: _taken(tmp_path, key, 2, name)  # noqa: E731 - run 1
    taken_2 = lambda name: _taken(tmp_path, key, 2, name)  # noqa: E731 - run 2, same photo
    assert _free_stem("x", set(), taken_1) == "x"  # claimed, crops not written yet
    assert _free_stem("x", set(), taken_2) == "x"  # was "x-2": a second crop of the photo
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_0.png", "x_1.png"]


def test_a_claim_of_another_photo_is_still_taken_and_claims_are_dropped(tmp_path) -> None:
    mine = lambda name: _taken(tmp_path, photo_key("/a/x.jpg"), 1, name)  # noqa: E731
    other = lambda name: _taken(tmp_path, photo_key("/b/x.jpg"), 1, name)  # noqa: E731
    assert _free_stem("x", set(), mine) == "x"
    assert _free_stem("x", set(), other) == "x-2"  # another photo of that name
    _drop_claims(tmp_path, "x", 1)
    _drop_claims(tmp_path, "x-2", 1)
    assert list(tmp_path.iterdir()) == []  # a failed write leaves no claim behind


def test_an_empty_claim_of_an_earlier_exprsim_is_taken_and_dropped(tmp_path) -> None:
    (tmp_path / "x_0.png").write_bytes(b"")
    assert _taken(tmp_path, photo_key("/a/x.jpg"), 1, "x")
    _drop_claims(tmp_path, "x", 1)
    assert list(tmp_path.iterdir()) == []
