"""Round 26 (docs/robustness.md): the FEC CSV as spreadsheets and hands write it."""

from __future__ import annotations

from pathlib import Path

from exprsim.data.fec import parse_fec_csv

from .test_fec_data import U, _line


def _urls(path: Path) -> list[str]:
    t = parse_fec_csv(path)
    return [f.url for r in t for f in r.faces]


def test_a_byte_order_mark_is_not_part_of_the_first_url(tmp_path):
    clean, bom = tmp_path / "clean.csv", tmp_path / "bom.csv"
    text = _line() + "\n" + _line(("a", "d", "e")) + "\n"
    clean.write_text(text)
    bom.write_bytes(("\ufeff" + text).encode())
    assert _urls(bom) == _urls(clean)  # was '\ufeff"http://..."': 6 unique URLs, not 5
    assert _urls(bom)[0] == U.format("a")


def test_a_space_before_a_quoted_url_is_not_part_of_it(tmp_path):
    spaced = tmp_path / "spaced.csv"
    spaced.write_text(_line().replace(',"http', ', "http') + "\n")
    assert ', "http' in spaced.read_text()
    assert _urls(spaced) == [U.format(u) for u in "abc"]  # the 2nd and 3rd kept the quotes


def test_a_url_holding_a_quote_is_reported_not_fetched(tmp_path):
    odd = tmp_path / "odd.csv"
    odd.write_text(
        _line(("a", 'b"x', "c")).replace('"http', "http").replace('.jpg"', ".jpg") + "\n"
    )
    t = parse_fec_csv(odd)
    assert len(t) == 0 and "malformed URL" in t.report.issues[0].reason


# ----------------------------------------------------------------- training on FEC crops


def _fec_run(root: Path, n_fetched: int):
    """A FEC CSV of 24 triplets over 24 random images, the first ``n_fetched`` images in
    the fetch folder's manifest and cropped (box only, 32 px)."""
    import numpy as np
    from PIL import Image

    from exprsim.data.fec import (
        Annotation,
        FaceBox,
        FecFace,
        FecTriplet,
        TripletType,
        write_fec_csv,
    )
    from exprsim.fec.crops import CropConfig, build_crops
    from exprsim.fec.fetch import FetchResult, image_relpath, open_manifest

    rng = np.random.default_rng(0)
    data, faces = root / "fetch", []
    for i in range(24):
        url = f"http://x.invalid/{i}.png"
        rel = image_relpath(url, "png")
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (120, 120, 3), np.uint8)).save(data / rel)
        faces.append((url, rel))
    rows = []
    for n in range(24):
        picked = rng.choice(24, 3, replace=False)
        box = FaceBox(0.2, 0.8, 0.2, 0.8)
        rows.append(
            FecTriplet(
                n + 1,
                tuple(FecFace(faces[k][0], box) for k in picked),
                TripletType(n % 3),
                tuple(Annotation(f"r{k}", 1 + (n % 3)) for k in range(6)),
            )
        )
    csv = write_fec_csv(rows, root / "train.csv")

    def fetch_and_crop(upto: int) -> None:
        with open_manifest(data) as man:
            for url, rel in faces[:upto]:
                man.record(FetchResult(url, "ok", path=rel, bytes=(data / rel).stat().st_size))
        build_crops(csv, data, config=CropConfig(detector="none", size=32), progress=False)

    fetch_and_crop(n_fetched)
    return csv, data, fetch_and_crop


def _fec_cfg(csv, data, iterations, **kw):
    from exprsim.models.embedder import PreprocessConfig
    from exprsim.training.fec import FECTrainConfig

    return FECTrainConfig(
        model="exprnet_s",
        preprocess=PreprocessConfig(input_size=48, grayscale=True, align_size=32),
        train_csv=str(csv),
        crops_dir=str(data),
        iterations=iterations,
        triplets_per_type=1,
        checkpoint_every=2,
        num_threads=1,
        device="cpu",
        **kw,
    )


def test_a_fec_run_resumed_after_more_images_were_cropped_is_refused(tmp_path):
    import pytest

    from exprsim.training.fec import train_fec

    csv, data, fetch_and_crop = _fec_run(tmp_path, 16)
    train_fec(_fec_cfg(csv, data, 2, log_every=1), tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "state.pt").read_bytes()
    fetch_and_crop(24)  # more triplets usable: other batches from iteration 3 on
    with pytest.raises(ValueError, match="training data changed since its last checkpoint"):
        train_fec(_fec_cfg(csv, data, 4, log_every=1), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "state.pt").read_bytes() == before


def test_fec_validation_runs_every_val_every_iterations_whatever_log_every(tmp_path):
    import json

    from exprsim.training.fec import train_fec

    csv, data, _ = _fec_run(tmp_path, 24)
    cfg = _fec_cfg(csv, data, 7, log_every=3, val_every=2, val_csv=str(csv))
    train_fec(cfg, tmp_path / "run", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # was validated at 6 and 7 only (common multiples of log_every and val_every, and the end)
    assert [r["iteration"] for r in rows if "val_all" in r] == [2, 4, 6, 7]
    assert {3, 6} <= {r["iteration"] for r in rows}


def test_fec_crop_of_a_csv_without_a_valid_triplet_says_so(tmp_path, capsys):
    from exprsim.cli import main
    from exprsim.fec.fetch import open_manifest

    with open_manifest(tmp_path / "data"):
        pass
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["fec", "crop", str(empty), "--data", str(tmp_path / "data"), "-q"]) == 1
    assert "no valid triplet: see `exprsim fec stats`" in capsys.readouterr().err


def test_a_folder_or_a_gzip_file_is_named_as_such(tmp_path):
    import gzip

    import pytest

    from exprsim.errors import DataError

    with pytest.raises(DataError, match="a folder, not a FEC CSV"):  # was "no such file"
        parse_fec_csv(tmp_path)
    packed = tmp_path / "train.csv.gz"
    packed.write_bytes(gzip.compress((_line() + "\n").encode()))
    with pytest.raises(DataError, match="gzip-compressed"):  # was malformed rows
        parse_fec_csv(packed)


def test_fec_train_config_refuses_bad_margins_and_agreements():
    import pytest

    from exprsim.training.fec import FECTrainConfig

    for margins in [(float("nan"), 0.2, 0.2), (0.1, 0.2, -5.0), ("x", 0.2, 0.2)]:
        with pytest.raises(ValueError, match="margins needs 3 finite numbers"):
            FECTrainConfig(margins=margins)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="agreement must be strong, weak or none"):
        FECTrainConfig(agreement="bogus")
    assert FECTrainConfig(agreement="weak", margins=(0, 0.2, 0.2)).agreement == "weak"


def test_evaluate_fec_warns_of_repeated_rows(tmp_path, caplog):
    import logging

    from exprsim.fec.evaluate import evaluate_fec
    from exprsim.training.fec import train_fec

    csv, data, _ = _fec_run(tmp_path, 24)
    train_fec(_fec_cfg(csv, data, 1, log_every=1), tmp_path / "run", progress=False)
    lines = csv.read_text().splitlines()
    twice = tmp_path / "twice.csv"
    twice.write_text("\n".join([*lines, lines[0]]) + "\n")
    with caplog.at_level(logging.WARNING):
        evaluate_fec(tmp_path / "run", twice, data)
    assert "1 row(s) repeat an earlier row" in caplog.text  # was counted twice silently


def test_a_sampler_that_must_repeat_triplets_says_so(caplog):
    import logging

    import numpy as np

    from exprsim.fec.dataset import BalancedTripletSampler

    with caplog.at_level(logging.WARNING):
        sampler = BalancedTripletSampler(np.array([0] * 40 + [1] * 3 + [2] * 40), per_type=30)
    assert "only 3 two-class triplets, fewer than the 30" in caplog.text
    batch = sampler.batch(0)
    assert len(batch) == 90 and len(set(batch.tolist())) < 90  # the repeats it warned of
