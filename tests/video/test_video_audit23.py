"""Twenty-third robustness round, video: a report the disk refused is said without the
name of the hidden folder it was being written in (gone by then), and says that the
earlier run's files are left whole."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path
from typing import Any

import pytest

from exprsim.cli.video_cmd import _save_report
from exprsim.errors import ExprsimError


class _FullDisk:
    """An analysis whose :meth:`save` meets a full disk inside its hidden folder."""

    def save(self, out_dir: Any) -> dict[str, Path]:
        hidden = Path(out_dir) / ".exprsim-partial-123-abcd" / "report.html"
        raise OSError(errno.EFBIG, "File too large", str(hidden))


def test_a_refused_report_names_no_hidden_folder(tmp_path: Path) -> None:
    """Audit: "cannot write the report ([Errno 27] File too large:
    'out/.exprsim-partial-6321-_mw8mbsm/report.html')" named a folder removed before the
    line was printed, and did not say the earlier run's files were kept."""
    args = argparse.Namespace(out=str(tmp_path / "out"))
    with pytest.raises(ExprsimError) as caught:
        _save_report(args, _FullDisk())
    assert str(caught.value) == (
        f"--out {args.out}: cannot write the report (File too large); the files of an "
        "earlier run there are left whole"
    )
