"""Embedder API: shapes, formats, determinism, errors, config round trip."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.errors import ModelError
from exprsim.models.embedder import Embedder, EmbedderConfig, PreprocessConfig, preprocess_crops
from exprsim.models.registry import create_model


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    import torch

    torch.manual_seed(0)
    return Embedder(create_model("exprnet_s"), EmbedderConfig(model="exprnet_s", version="test"))


def test_embed_crops_gray_rgb_any_size(embedder):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(3, 48, 48), dtype=np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    big = np.stack([np.kron(g, np.ones((3, 3), np.uint8)) for g in gray])  # 144x144
    e_gray, e_rgb = embedder.embed_crops(gray), embedder.embed_crops(rgb)
    assert e_gray.shape == (3, 16) and e_gray.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e_gray, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(e_gray, e_rgb, atol=1e-5)  # gray == RGB of the same gray
    # re-framing on (the default): no face in noise, so the crops are only brought to the
    # aligned side first (112 px, area), as every crop of a batch looked at is; without
    # re-framing, the same way (round 32: they went straight to 48 px)
    import cv2

    at_112 = np.stack([cv2.resize(b, (112, 112), interpolation=cv2.INTER_AREA) for b in big])
    np.testing.assert_array_equal(embedder.embed_crops(big), embedder.embed_crops(at_112))
    e_big = embedder.embed_crops(big, reframe=False)
    np.testing.assert_array_equal(e_big, embedder.embed_crops(at_112, reframe=False))
    np.testing.assert_array_equal(e_big, embedder.embed_crops(big))
    # a crop of at most 64 px is left as it is: 48 px crops resized to 64 go to 48 directly
    at_64 = np.stack([cv2.resize(g, (64, 64), interpolation=cv2.INTER_LINEAR) for g in gray])
    e_64 = embedder.embed_crops(at_64, reframe=False)
    direct = np.stack([cv2.resize(c, (48, 48), interpolation=cv2.INTER_AREA) for c in at_64])
    np.testing.assert_array_equal(e_64, embedder.embed_crops(direct, reframe=False))


def test_embed_with_proba_is_both_outputs_in_one_pass(embedder):
    import torch

    torch.manual_seed(1)
    net = create_model("exprnet_v", readout_angle=15.0, stages=[[8], [8], [16], [16]])
    emb = Embedder(net, EmbedderConfig(model="exprnet_v", version="test"), batch_size=16)
    crops = np.random.default_rng(2).integers(0, 256, size=(37, 48, 48), dtype=np.uint8)
    z, p = emb.embed_with_proba(crops)
    np.testing.assert_allclose(z, emb.embed_crops(crops), atol=1e-6)
    np.testing.assert_allclose(p, emb.emotion_proba(crops), atol=1e-6)
    z0, p0 = emb.embed_with_proba(crops[:0])
    assert z0.shape == (0, 16) and p0.shape == (0, 8)
    with pytest.raises(ValueError, match="no emotion classifier"):
        embedder.embed_with_proba(crops)  # exprnet_s: no classifier of its own


def test_embed_crops_batching_and_determinism(embedder):
    crops = np.random.default_rng(1).integers(0, 256, size=(70, 40, 40), dtype=np.uint8)
    e1 = embedder.embed_crops(crops)
    embedder.batch_size = 16
    try:
        e2 = embedder.embed_crops(crops)
    finally:
        embedder.batch_size = 64
    np.testing.assert_allclose(e1, e2, atol=1e-5)
    assert embedder.embed_crops(crops[:0]).shape == (0, 16)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 48, 48), np.float32),
        np.zeros((2, 48, 48, 4), np.uint8),
        np.zeros((48,), np.uint8),
    ],
)
def test_embed_crops_rejects_bad_input(embedder, bad):
    with pytest.raises(ModelError):
        embedder.embed_crops(bad)


def test_preprocess_normalisation():
    cfg = PreprocessConfig(input_size=4, mean=0.5, std=0.25)
    x = preprocess_crops(np.full((1, 4, 4), 255, np.uint8), cfg)
    assert x.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(x, 2.0)


def test_config_json_round_trip():
    cfg = EmbedderConfig(model="exprnet_s", version="3", preprocess=PreprocessConfig(input_size=40))
    import json

    assert EmbedderConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert cfg.name_version == "exprnet_s@3"


def test_load_model_unknown_path_is_clear(tmp_path):
    from exprsim.models.embedder import load_model

    with pytest.raises(ModelError, match="never downloads"):
        load_model(str(tmp_path / "nothing"))


def test_embed_stream_batches_across_images_and_matches_one_by_one(embedder, tmp_path):
    """Crops of several images are embedded in shared batches (batch_size 2 here, so
    batches straddle images), yet each face gets the embedding of its own crop, in input
    then detector order, with unreadable inputs reported in place."""
    pytest.importorskip("mediapipe")
    from exprsim.faces.pipeline import analyze_image
    from exprsim.io import load_image
    from exprsim.samples import sample_path

    small = Embedder(embedder.model, embedder.config, batch_size=2)
    names = ["grace_hopper.jpg", "pexels_langer_frame000.jpg", "astronaut_eileen_collins.jpg"]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    items = [str(sample_path(n)) for n in names]
    items.insert(1, str(bad))
    out = list(small.embed_stream(items, workers=2))
    assert [o.index for o in out] == [0, 1, 2, 3] and [o.source for o in out] == items
    assert out[1].error is not None and out[1].faces == ()
    align = embedder.config.preprocess.align_config()
    for o, path in zip([out[0], out[2], out[3]], [items[0], items[2], items[3]], strict=True):
        (af,) = analyze_image(load_image(path), align_config=align)
        (fe,) = o.faces
        assert fe.source == path and fe.face_index == 0
        np.testing.assert_allclose(fe.embedding, embedder.embed_crops(af.crop[None])[0], atol=1e-5)
    listed = small.embed_images([items[0], items[2]])
    np.testing.assert_allclose(listed[1].embedding, out[2].faces[0].embedding, atol=1e-6)


# ------------------------------------------------------------- damaged checkpoint folders


def _checkpoint(root, random_model_dir, name: str, config: bytes | None = None, weights=None):
    import shutil

    d = root / name
    shutil.copytree(random_model_dir, d)
    if config is not None:
        (d / "config.json").write_bytes(config)
    if weights is not None:
        (d / "model.safetensors").write_bytes(weights)
    return d


def test_damaged_checkpoint_folders_raise_model_error(tmp_path, random_model_dir):
    import json

    from exprsim.models.embedder import load_model

    good = json.loads((random_model_dir / "config.json").read_text())
    cases = {
        "json_syntax": (b"{bad", None),
        "empty_object": (b"{}", None),
        "a_list": (b"[1, 2]", None),
        "unknown_kwarg": (json.dumps({**good, "model_kwargs": {"wings": 2}}).encode(), None),
        "other_network": (json.dumps({**good, "model": "exprnet_v"}).encode(), None),
        "bad_dim": (json.dumps({**good, "embedding_dim": 8}).encode(), None),
        "empty_weights": (None, b""),
        "junk_weights": (None, b"\x00junk" * 100),
    }
    for name, (config, weights) in cases.items():
        d = _checkpoint(tmp_path, random_model_dir, name, config, weights)
        with pytest.raises(ModelError) as info:
            load_model(str(d))
        assert str(d) in str(info.value), name


def test_crops_that_are_not_crops(embedder):
    assert embedder.embed_crops([]).shape == (0, 16)
    assert embedder.emotion_proba([]) is None or embedder.emotion_proba([]).shape == (0, 8)
    for bad in (None, 3, "face.jpg", np.zeros((2, 3)), [[1, 2], [3]]):
        with pytest.raises(ModelError, match="crops must be"):
            embedder.embed_crops(bad)
    with pytest.raises(ModelError, match="batch_size"):
        Embedder(embedder.model, embedder.config, batch_size=0)


def test_model_config_fields_are_type_checked(tmp_path, random_model_dir):
    import json
    import shutil

    from exprsim.models.embedder import load_model

    for where, key, value in (
        ("preprocess", "input_size", 48.0),  # was a TypeError when embedding
        ("preprocess", "grayscale", "false"),  # was read as True (a non-empty string)
        (None, "tag_threshold", "0.5"),  # was accepted as text
    ):
        bad = tmp_path / f"{key}"
        shutil.copytree(random_model_dir, bad)
        doc = json.loads((bad / "config.json").read_text())
        (doc[where] if where else doc)[key] = value
        (bad / "config.json").write_text(json.dumps(doc))
        with pytest.raises(ModelError, match=key):
            load_model(str(bad))
