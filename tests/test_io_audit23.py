"""Twenty-third robustness round, io: an ``.npz`` (an index's ANN cache, a reference set,
the parsed-FER cache) cut by a full disk leaves the earlier file whole and prints no
"Exception ignored" traceback after the command's own line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exprsim.index.ann import ExactIndex
from file_limit import run_with_file_limit


def test_an_ann_cache_cut_by_a_full_disk_prints_no_traceback(tmp_path: Path) -> None:
    """Audit: numpy's ``savez`` leaves its zip archive to the garbage collector when a
    write fails; its second try printed "Exception ignored in: <function ZipFile.__del__
    ...> ... ValueError: seek of closed file" (`classify --build-reference`, `index add`
    saving its ANN cache, the FER cache)."""
    ExactIndex(np.zeros((4, 16), np.float32)).save(tmp_path / "f.db.ann")
    before = (tmp_path / "f.db.ann").read_bytes()
    code = """
        import numpy as np
        from exprsim.index.ann import ExactIndex
        vectors = np.random.default_rng(0).normal(size=(2000, 16)).astype(np.float32)
        try:
            ExactIndex(vectors).save("f.db.ann")
        except OSError as exc:
            print(exc.filename, exc.strerror, sep="|")
    """
    proc = run_with_file_limit(code, 20000, tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "f.db.ann|File too large"
    assert proc.stderr == ""  # was: two "Exception ignored" tracebacks
    assert (tmp_path / "f.db.ann").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.db.ann"]


def test_save_npz_reads_back_as_numpy_wrote_it(tmp_path: Path) -> None:
    """The helper of the fix writes what ``numpy.load`` reads (new API: fails on the old
    code only by its absence)."""
    from exprsim.io import save_npz, write_atomically

    arrays = {"a": np.arange(5, dtype=np.int8), "s": np.array("text"), "e": np.zeros((0, 3))}
    for compressed in (False, True):
        path = tmp_path / f"x{compressed}.npz"
        write_atomically(path, lambda fh, c=compressed: save_npz(fh, arrays, compressed=c))
        with np.load(path, allow_pickle=False) as z:
            assert sorted(z.files) == ["a", "e", "s"]
            assert all(np.array_equal(z[k], v) and z[k].dtype == v.dtype for k, v in arrays.items())
