"""Round 26 (docs/robustness.md): numbers in report tables."""

from __future__ import annotations

import pandas as pd
import pytest

from exprsim.report.html import _cell


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234.2, "1234.2"),  # was "1234", as 1234.4 was: five rows of one time at 5 fps
        (10800.0, "10800.0"),  # was "1.08e+04"
        (-2500.55, "-2500.6"),
        (12.345, "12.35"),  # below 1,000: 4 significant digits, as before
        (0.0001234, "0.0001234"),
    ],
)
def test_large_floats_keep_their_whole_part_and_a_decimal(value, text):
    assert _cell(value) == (text, True)


@pytest.mark.parametrize("missing", [pd.NA, pd.NaT, None])
def test_pandas_missing_values_are_empty_cells(missing):
    assert _cell(missing)[0] == ""  # pd.NA was "<NA>"
