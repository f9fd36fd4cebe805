"""Round 36 (an audit of every deletion): a Ray embed shard that cannot be read for a
moment (permission denied, an I/O error of a network disk) is kept and the run stops in
one line; only a shard whose footer is damaged is embedded again."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exprsim.errors import ExprsimError
from exprsim.scale.ray_embed import _readable_shard


def test_an_unreadable_shard_is_kept_and_a_damaged_one_is_not(tmp_path, monkeypatch) -> None:
    good = tmp_path / "part-00000.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), good)
    assert _readable_shard(good)
    damaged = tmp_path / "part-00001.parquet"
    damaged.write_bytes(good.read_bytes()[:-20])  # cut short
    assert not _readable_shard(damaged)
    garbled = bytearray(good.read_bytes())  # the footer garbled, its length and magic kept
    n = struct.unpack("<I", garbled[-8:-4])[0]
    garbled[len(garbled) - 8 - n : len(garbled) - 8] = b"\xff" * n
    damaged.write_bytes(bytes(garbled))  # pyarrow: an OSError without an errno
    assert not _readable_shard(damaged)

    def deny(path: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(pq, "read_metadata", deny)
    with pytest.raises(ExprsimError, match=r"cannot be read now .* it was kept"):
        _readable_shard(good)
    assert Path(good).is_file()
