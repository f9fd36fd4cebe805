"""The web app's "is this photo kept already?" check against a folder of kept uploads,
the current code against the code before (given as a file with ``--old``: a ``glob`` of
``KEY-*``), at several folder sizes, in one run.

    python benchmarks/upload_keys.py --sizes 10000 100000 [--old OLD_UPLOADS.py]

Each size: that many empty kept uploads (``<24 hex>-photo.png``) in a temporary folder;
then the median of ``--repeat`` checks of a new content (not kept: the common case) and of
a copy of a kept one, each through the module's ``_keep_once`` (the lock, the check and
the rename or the removal; the disk's sync left out). "first": the first check (a cold
folder listing).
"""

from __future__ import annotations

import argparse
import importlib.util
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType


def _module(path: str | None) -> ModuleType:
    if path is None:
        from exprsim.web import uploads

        return uploads
    spec = importlib.util.spec_from_file_location("uploads_old", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["uploads_old"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _fill(folder: Path, n: int) -> list[str]:
    keys = [secrets.token_hex(12) for _ in range(n)]
    for k in keys:
        (folder / f"{k}-photo.png").touch()
    return keys


def _time(mod: ModuleType, folder: Path, key: str) -> float:
    tmp = folder / f".part-{secrets.token_hex(6)}"
    tmp.write_bytes(b"x")
    mod.sync_file = lambda p: None  # the disk's sync is not what is measured
    t0 = time.perf_counter()
    mod._keep_once(tmp, folder, key, "photo.png")
    return time.perf_counter() - t0


def run(size: int, old: str | None, repeat: int) -> dict[str, float]:
    mod = _module(old)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        keys = _fill(folder, size)
        first = _time(mod, folder, secrets.token_hex(12))
        new = [_time(mod, folder, secrets.token_hex(12)) for _ in range(repeat)]
        copy = [_time(mod, folder, keys[i % len(keys)]) for i in range(repeat)]
    return {
        "first_ms": first * 1e3,
        "new_ms": statistics.median(new) * 1e3,
        "copy_ms": statistics.median(copy) * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--old", help="uploads.py of the code before (listing the folder)")
    ap.add_argument("--repeat", type=int, default=20, help="checks per case (default 20)")
    args = ap.parse_args(argv)
    print("size     code     first ms   new ms   copy ms")
    for size in args.sizes:
        for label, path in (("current", None), ("old", args.old)):
            if label == "old" and path is None:
                continue
            r = run(size, path, args.repeat)
            print(
                f"{size:<8} {label:<8} {r['first_ms']:8.1f} {r['new_ms']:8.2f} {r['copy_ms']:8.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
