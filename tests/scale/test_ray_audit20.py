"""Ray: a scheme naming a Python module that is no Ray plug-in is refused in one line.

Ray imports the scheme's module and wants its ``ClientBuilder``; ``os://x`` (a module, no
plug-in) reached Ray, whose ``RuntimeError`` (``Module: os does not have ClientBuilder``)
came with a traceback.
"""

from __future__ import annotations

import pytest

from exprsim.errors import ExprsimError
from exprsim.scale import ray_embed


@pytest.mark.parametrize("address", ["os://x:1", "json://x", "exprsim://x:1"])
def test_a_module_that_is_no_plugin_is_refused_in_one_line(address: str) -> None:
    with pytest.raises(ExprsimError, match="names no Ray plug-in") as info:
        ray_embed.check_address(address)  # was: passed to Ray
    assert "\n" not in str(info.value)
