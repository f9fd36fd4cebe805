"""Model loading arguments found by the sixth audit (docs/robustness.md)."""

from __future__ import annotations

import pytest

from exprsim.errors import ModelError


@pytest.mark.parametrize("name", [None, 3])
def test_load_model_of_no_name_is_a_model_error(name) -> None:
    from exprsim.models.embedder import load_model

    with pytest.raises(ModelError, match="shipped name or a folder path"):  # a raw TypeError
        load_model(name)  # type: ignore[arg-type]


def test_load_model_of_a_name_too_long_is_a_model_error(tmp_path) -> None:
    from exprsim.models.embedder import load_model

    with pytest.raises(ModelError, match=r"no config\.json"):  # a raw OSError
        load_model(str(tmp_path / ("m" * 300)))


@pytest.mark.parametrize("dim", [0, -1, 2.5])
def test_create_model_refuses_an_impossible_embedding_size(dim) -> None:
    from exprsim.models.registry import create_model

    # 0 built a model of 0-wide embeddings; -1 and 2.5 were raw torch errors
    with pytest.raises(ModelError, match="embedding_dim must be an integer >= 1"):
        create_model("exprnet_s", embedding_dim=dim)
