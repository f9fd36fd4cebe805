"""Emotion classification: k-nearest neighbours in the expression embedding.

FECNet classifies emotions with a kNN classifier on top of the (unchanged) embedding and
reports per-class AUC-ROC (K=200); the SGM paper reports K=11 accuracy. Here:

* :class:`ExpressionKNN` — a scikit-learn-style estimator (``fit / predict /
  predict_proba / score``) over :mod:`exprsim.metrics`' exact kNN;
* a **reference set** — FER+ Training embeddings + majority labels (float16, ~1 MB) that
  ships inside the package (``exprsim/apps/reference/ferplus.npz``) so that
  ``exprsim classify IMAGE`` works offline. :func:`build_reference_set` makes it for a
  model and picks the default K on a held-out tenth of Training (never on PublicTest);
  :func:`load_reference_set` reads it;
* :func:`evaluate_reference` — accuracy, macro-F1 and per-class AUC-ROC on FER+ PublicTest.
"""

from __future__ import annotations

import functools
import json
import logging
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from exprsim.equality import array_equality
from exprsim.errors import (
    ArgumentError,
    DataError,
    ExprsimError,
    ModelError,
    as_numpy,
    printable,
    require_positive_int,
)
from exprsim.metrics import not_whole
from exprsim.models.identity import embedder_digest, mismatch, valid_digest

log = logging.getLogger(__name__)

#: K values tried by :func:`build_reference_set` on the held-out part of Training.
K_GRID: tuple[int, ...] = (1, 3, 5, 11, 21, 51, 101, 200, 400)
REFERENCE_NAME = "ferplus.npz"
#: how messages tell a CLI user to make a reference set (--ref-out is required)
BUILD_REFERENCE_COMMAND = "exprsim classify --build-reference --ref-out FILE.npz"


def reference_path() -> Path:
    """Where the shipped reference set lives (``exprsim/apps/reference/ferplus.npz``)."""
    return Path(str(resources.files("exprsim.apps"))) / "reference" / REFERENCE_NAME


# ----------------------------------------------------------------------------- estimator


@functools.cache
def _not_fitted_error() -> type[ExprsimError]:
    """The error of an :class:`ExpressionKNN` used before :meth:`~ExpressionKNN.fit`: an
    :class:`~exprsim.errors.ExprsimError` that is also scikit-learn's ``NotFittedError``
    (a ``ValueError`` and ``AttributeError``), made when first needed (scikit-learn is
    imported only then)."""
    from sklearn.exceptions import NotFittedError

    return type("NotFittedError", (ExprsimError, NotFittedError), {"__module__": __name__})


def __getattr__(name: str) -> Any:
    """``exprsim.apps.classify.NotFittedError`` (:func:`_not_fitted_error`), so that the
    error pickles (worker processes) and can be caught by name."""
    if name == "NotFittedError":
        return _not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ExpressionKNN:
    """k-nearest-neighbour expression classifier (scikit-learn style).

    Args:
        k: neighbours voting (clamped to the training size).
        metric: ``"euclidean"`` or ``"cosine"``.
        weights: ``"uniform"`` (share of the k neighbours per class) or ``"distance"``.
        classes: class names; when given, integer labels index into it and string labels
            are looked up in it (default: the sorted unique labels seen by :meth:`fit`,
            matched by value: labels ``3`` and ``7`` give two classes, two columns).

    Attributes:
        classes_: the classes after :meth:`fit`, in the order of the probability columns.
        n_features_in_: the embeddings' width ``D`` after :meth:`fit`.
        feature_names_in_: the column names of a table ``X`` given to :meth:`fit` (text
            names only, as scikit-learn): queries with other names, or in another order,
            are refused (the same columns sorted as text gave other answers silently).

    scikit-learn's tools take it (``clone``, ``cross_val_score``, ``GridSearchCV``,
    pipelines, ``is_classifier``, ``check_is_fitted``) without exprsim importing
    scikit-learn, which costs a second of start-up; it passes scikit-learn's
    ``check_estimator``. Bad input or hyper-parameters raise
    :class:`~exprsim.errors.ArgumentError` (an ``ExprsimError`` and a ``ValueError``, as
    scikit-learn's estimators raise); a use before :meth:`fit` raises an ``ExprsimError``
    that is scikit-learn's ``NotFittedError``.
    """

    #: what scikit-learn before 1.6 reads instead of :meth:`__sklearn_tags__`
    _estimator_type = "classifier"

    def __init__(
        self,
        k: int = 11,
        metric: str = "euclidean",
        weights: str = "uniform",
        classes: Sequence[Any] | None = None,
    ) -> None:
        self.k = k
        self.metric = metric
        self.weights = weights
        self.classes = classes

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {
            "k": self.k,
            "metric": self.metric,
            "weights": self.weights,
            "classes": self.classes,
        }

    def set_params(self, **params: Any) -> ExpressionKNN:
        for key, value in params.items():
            if key not in self.get_params():
                raise ValueError(f"unknown parameter {key!r}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:  # as scikit-learn's: the parameters not at their defaults
        defaults = ExpressionKNN.__init__.__defaults__ or ()
        changed = [
            f"{key}={value!r}"
            for (key, value), default in zip(self.get_params().items(), defaults, strict=True)
            if not (value is default or (type(value) is type(default) and value == default))
        ]
        return f"ExpressionKNN({', '.join(changed)})"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's description of the estimator (asked for by scikit-learn 1.6 and
        later, so imported from it only then): a classifier that needs labels and a fit."""
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "embeddings_")

    def _encode(self, y: Any) -> np.ndarray:
        """Column index (into :attr:`classes_`) of each label of ``y``.

        Integer labels (and whole-number floats) index into ``classes`` when it was given,
        and name a label seen by :meth:`fit` otherwise (matched by value: ``1`` is ``1.0``);
        any other label is looked up by its text.

        Raises:
            ExprsimError: a label that is missing (NaN, None), fractional, or unknown.
        """
        y = _label_array(y)
        by_value = getattr(self, "_labels_by_value", False)
        if by_value and y.dtype.kind in "biuf":  # the sorted labels seen by fit
            codes = np.searchsorted(self.classes_, y).astype(np.int64)
            known = codes < len(self.classes_)
            known[known] = self.classes_[codes[known]] == y[known]
            if not known.all():
                raise ArgumentError(
                    f"unknown label {y[~known][0].item()!r}; classes: {self.classes_.tolist()}"
                )
            return codes
        if y.dtype.kind in "iuf":  # positions in classes_
            codes = y.astype(np.int64)
            if codes.size and (codes.min() < 0 or codes.max() >= len(self.classes_)):
                raise ArgumentError(f"labels must lie in [0, {len(self.classes_)})")
            return codes
        index = {str(c): i for i, c in enumerate(self.classes_)}
        try:
            return np.array([index[str(v)] for v in y], dtype=np.int64)
        except KeyError as exc:
            raise ArgumentError(
                f"unknown label {exc.args[0]!r}; classes: {list(self.classes_)}"
            ) from exc

    def fit(self, X: ArrayLike, y: Any) -> ExpressionKNN:
        """Remember ``(N, D)`` embeddings ``X`` and their ``(N,)`` labels ``y``.

        Without ``classes``, :attr:`classes_` are ``np.unique(y)`` of the labels as given
        (integers, whole-number floats and booleans keep their values and dtype, so
        :meth:`predict` answers in them, as scikit-learn's ``KNeighborsClassifier``); text
        labels become ``str`` classes.

        Raises:
            ExprsimError: ``X`` is not a non-empty finite ``(N, D)`` array (or, with the cosine
                metric, holds an all-zero row), ``y`` is not 1-d or not of length ``N``, a
                missing (NaN, None) or fractional label, a bad hyper-parameter, repeated
                ``classes``, or a label outside ``classes``.
        """
        x = _float32_rows(X, "fit: the embeddings")
        if y is None:
            raise ArgumentError(
                "ExpressionKNN requires y to be passed, but the target y is None: give one "
                "label per row of X"
            )
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:  # a column of labels: as scikit-learn, with a word
            _warn_column_vector()
            y = y.ravel()
        if y.ndim != 1:
            raise ArgumentError(f"fit needs 1-d labels y (one per row of X), got shape {y.shape}")
        if x.ndim == 2 and x.shape[1] == 0:
            raise ArgumentError(
                f"fit needs (N, D) embeddings with D >= 1: 0 feature(s) (shape=({len(x)}, 0)) "
                "while a minimum of 1 is required."
            )
        if x.ndim != 2 or len(x) != len(y) or len(x) == 0 or x.shape[1] == 0:
            raise ArgumentError(
                f"fit needs (N, D) embeddings and N labels, got {x.shape} and {y.shape}"
            )
        self._check_params()
        if self.metric == "cosine":
            _refuse_zero_rows(x, "fit: embedding")
        names = _feature_names(X)  # before any change: a refit refused keeps the earlier fit
        y = _label_array(y)
        if self.classes is not None:
            classes = _given_classes(self.classes)
        elif y.dtype.kind in "biuf":
            classes = np.unique(y)
        else:
            classes = np.unique(y.astype(str))
        kept = {k: v for k, v in vars(self).items() if k in ("classes_", "_labels_by_value")}
        self.classes_ = classes
        # numeric labels name classes_ entries (not positions) when classes_ are fit's own
        self._labels_by_value = self.classes is None and y.dtype.kind in "biuf"
        try:
            labels = self._encode(y)
        except BaseException:  # a refit that fails keeps the earlier fit whole
            for name in ("classes_", "_labels_by_value"):
                vars(self).pop(name, None)
            vars(self).update(kept)
            raise
        self.labels_ = labels
        self.embeddings_ = x
        self.n_features_in_ = x.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        else:
            vars(self).pop("feature_names_in_", None)
        if self.k > len(x):  # every face would then vote: the class prior, not neighbours
            log.warning("k = %d is more than the %d faces fitted: using %d", self.k, len(x), len(x))
        return self

    def _check_params(self) -> None:
        """Refuse bad hyper-parameters: at fit time (scikit-learn's habit), and again when
        predicting (``set_params`` after a fit)."""
        require_positive_int(self.k, "k", ArgumentError)
        if self.metric not in ("euclidean", "cosine"):
            raise ArgumentError(f"metric must be 'euclidean' or 'cosine', got {self.metric!r}")
        if self.weights not in ("uniform", "distance"):
            raise ArgumentError(f"weights must be 'uniform' or 'distance', got {self.weights!r}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "embeddings_"):
            raise _not_fitted_error()("ExpressionKNN is not fitted: call fit() first")

    @property
    def k_(self) -> int:
        """The K actually used (``k`` clamped to the training size, with a warning from
        :meth:`fit`)."""
        self._check_fitted()
        return int(min(self.k, len(self.embeddings_)))

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """``(M, D)`` -> ``(M, C)`` class probabilities (columns follow ``classes_``).

        Raises:
            ExprsimError: queries of the wrong width, NaN or infinite values, or (cosine
                metric) an all-zero query, which has no direction to compare.
        """
        from exprsim.metrics import knn_proba

        self._check_fitted()
        self._check_params()
        _check_feature_names(getattr(self, "feature_names_in_", None), _feature_names(X))
        dim = self.embeddings_.shape[1]
        x = _float32_rows(X, "the queries")
        if x.shape == (0,):  # ``[]``: no query, as embed_crops([]) answers
            x = x.reshape(0, dim)
        if x.ndim == 1:
            one = " (one query x: pass [x])" if x.shape == (dim,) else ""
            raise ArgumentError(
                f"queries must be (M, {dim}) embeddings, got {x.shape}{one}. Reshape your data"
            )
        if x.ndim != 2:
            raise ArgumentError(f"queries must be (M, {dim}) embeddings, got {x.shape}")
        if x.shape[1] != dim:
            raise ArgumentError(
                f"X has {x.shape[1]} features, but ExpressionKNN is expecting {dim} features "
                f"as input: queries must be (M, {dim}) embeddings, got {x.shape}"
            )
        if len(x) == 0:
            return np.zeros((0, len(self.classes_)))
        if self.metric == "cosine":
            _refuse_zero_rows(x, "query")
        return knn_proba(
            self.embeddings_,
            self.labels_,
            x,
            self.k_,
            n_classes=len(self.classes_),
            metric=self.metric,
            weights=self.weights,
        )

    def predict(self, X: ArrayLike) -> np.ndarray:
        """``(M, D)`` -> ``(M,)`` predicted classes, entries of :attr:`classes_` with its
        dtype (ties: the first class)."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: ArrayLike, y: Any) -> float:
        """Accuracy on ``(X, y)``: the share of the faces whose prediction is their label.

        Raises:
            ExprsimError: ``y`` is not 1-d, holds an unknown or missing label, its length is
                not the number of rows of ``X``, or there is no face (an accuracy of nothing).
        """
        self._check_fitted()
        codes = self._encode(y)
        proba = self.predict_proba(X)
        if len(proba) != len(codes):
            raise ArgumentError(
                f"score needs one label per query: {len(proba)} queries, {len(codes)} labels"
            )
        if len(codes) == 0:
            raise ArgumentError("score needs at least one labelled face, got none")
        return float((proba.argmax(axis=1) == codes).mean())


def _feature_names(X: Any) -> np.ndarray | None:
    """The column names of a table ``X`` (a DataFrame: anything with ``columns``) when all
    are text, as scikit-learn's ``feature_names_in_``; else ``None``."""
    columns = getattr(X, "column_names", None)  # a pyarrow Table's (its columns: arrays)
    if columns is None:
        columns = getattr(X, "columns", None)
    if columns is None or isinstance(columns, str):
        return None
    try:
        names = list(columns)
    except TypeError:
        return None
    texts = [isinstance(n, str) for n in names]
    if names and any(texts) and not all(texts):  # scikit-learn's refusal
        raise TypeError(
            "Feature names are only supported if all input features have string names, but "
            f"your input has {sorted({type(n).__name__ for n in names})} as feature name / "
            "column name types"
        )
    if not names or not all(texts):
        return None
    return np.asarray(names, dtype=object)


def _check_feature_names(fitted: np.ndarray | None, given: np.ndarray | None) -> None:
    """Refuse queries whose column names are not the fit's, in its order (scikit-learn's
    words); warn, as it does, when only one of the two had names."""
    import warnings

    if fitted is None or given is None:
        if fitted is None and given is not None:
            said = "X has feature names, but ExpressionKNN was fitted without feature names"
        elif fitted is not None:
            said = "X does not have valid feature names, but ExpressionKNN was fitted with "
            said += "feature names"
        else:
            return
        warnings.warn(said, UserWarning, stacklevel=3)
        return
    if len(given) == len(fitted) and (given == fitted).all():
        return
    said = "The feature names should match those that were passed during fit.\n"
    unseen = [n for n in given if n not in set(fitted)]
    missing = [n for n in fitted if n not in set(given)]
    if unseen:
        said += "Feature names unseen at fit time:\n" + "".join(f"- {n}\n" for n in unseen)
    if missing:
        said += "Feature names seen at fit time, yet now missing:\n"
        said += "".join(f"- {n}\n" for n in missing)
    if not unseen and not missing:
        said += "Feature names must be in the same order as they were in fit.\n"
    raise ArgumentError(said)


def _float32_rows(X: Any, what: str) -> np.ndarray:
    """``X`` as float32, refused when it is a sparse matrix, holds complex numbers, NaN or
    infinite values, or finite values beyond float32's range (about 3.4e38; they would
    become infinite)."""
    if type(X).__module__.startswith("scipy.sparse"):
        raise ArgumentError(f"{what}: sparse input is not supported; pass X.toarray()")
    try:
        raw = as_numpy(X, what)
    except ExprsimError as exc:  # scikit-learn's habit: a ValueError
        raise ArgumentError(str(exc)) from None
    if raw.dtype.kind == "c":  # the cast would drop the imaginary parts with a warning
        raise ArgumentError(f"{what}: Complex data not supported")
    with np.errstate(over="ignore"):
        x = np.asarray(raw, dtype=np.float32)
    if not np.isfinite(x).all():
        if np.isfinite(np.asarray(X, dtype=np.float64)).all():
            raise ArgumentError(f"{what} hold values beyond float32's range (about 3.4e38)")
        raise ArgumentError(f"{what} hold NaN or infinite values")
    return x


def _is_missing(value: Any) -> bool:
    """Whether one label is a missing value (None, NaN, pandas' NA or NaT)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def _object_labels(y: np.ndarray) -> np.ndarray:
    """An object array of labels as text (all strings) or numbers (all numbers: ``1`` and
    ``1.0`` become one value); anything else is returned unchanged (looked up by text)."""
    values = y.tolist()
    missing = [i for i, v in enumerate(values) if _is_missing(v)]
    if missing:
        raise ArgumentError(
            f"label {missing[0]} is missing ({values[missing[0]]!r}): drop the unlabelled "
            "faces or give them a class"
        )
    text = [isinstance(v, str) for v in values]
    numeric = [isinstance(v, int | float | np.number | np.bool_) for v in values]
    if all(text):
        return y.astype(str)
    if all(numeric):
        return np.asarray(values)
    if any(text) and any(numeric):
        raise ArgumentError(
            f"labels mix text and numbers ({values[text.index(True)]!r} and "
            f"{values[numeric.index(True)]!r}): use one kind"
        )
    return y


def _label_array(y: Any) -> np.ndarray:
    """``y`` as a 1-d array of labels: numbers keep their dtype (an object array of numbers
    becomes a numeric one), strings stay strings.

    Raises:
        ExprsimError: ``y`` is not 1-d, holds a missing label (NaN, None, pandas' NA), an
            infinite or fractional float, a complex number, or mixes text and numbers.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ArgumentError(f"labels must be a 1-d sequence, got shape {y.shape}")
    if y.dtype.kind == "S" or (
        y.dtype.kind == "O" and len(y) and all(isinstance(v, bytes) for v in y.tolist())
    ):  # h5py's, np.genfromtxt's: their text ("b'happy'" was an unknown label)
        y = np.array([bytes(v).decode("utf-8", "replace") for v in y.tolist()], dtype=str)
    if y.dtype.kind == "O":
        y = _object_labels(y)
    if y.dtype.kind == "c":
        raise ArgumentError(
            f"Complex data not supported: labels must be class names or integer class ids, "
            f"got {y.dtype}"
        )
    if y.dtype.kind == "f":
        if np.isnan(y).any():
            i = int(np.flatnonzero(np.isnan(y))[0])
            raise ArgumentError(
                f"label {i} is missing (nan): drop the unlabelled faces or give them a class"
            )
        bad = not_whole(y)
        if bad.any():
            raise ArgumentError(
                f"float labels must be whole class ids, got {y[bad][0].item()!r} (a continuous "
                "target: a regression's, not classes): use integer or text labels"
            )
    return y


def _warn_column_vector() -> None:
    """scikit-learn's ``DataConversionWarning`` for labels given as an ``(N, 1)`` column
    (scikit-learn imported only then)."""
    import warnings

    from sklearn.exceptions import DataConversionWarning

    warnings.warn(
        "A column-vector y was passed when a 1d array was expected: it is read as (N,) "
        "labels (y.ravel())",
        DataConversionWarning,
        stacklevel=3,
    )


def _given_classes(classes: Sequence[Any]) -> np.ndarray:
    """``classes`` as an array, refusing a repeated name (one probability column each)."""
    out = np.asarray(list(classes))
    names = [str(c) for c in out.tolist()] if out.ndim == 1 else []
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise ArgumentError(f"class names must differ, {repeated[0]!r} is repeated in classes")
    return out


def _refuse_zero_rows(x: np.ndarray, what: str) -> None:
    """Refuse all-zero rows of ``x`` (the cosine metric cannot place them: no direction)."""
    zero = np.flatnonzero(~x.any(axis=1))
    if zero.size:
        raise ArgumentError(
            f"{what} {int(zero[0])} is all zero ({zero.size} of {len(x)} rows): the cosine "
            "metric cannot place it; drop it or use metric='euclidean'"
        )


# ----------------------------------------------------------------------------- evaluation


@array_equality
@dataclass(frozen=True)
class ClassificationReport:
    """Accuracy, macro-F1 and one-vs-rest AUC-ROC of a classifier on a labelled set.

    Attributes:
        classes: class names.
        accuracy, macro_f1, mean_auc: overall numbers.
        per_class: one dict per class (``class, support, precision, recall, f1, auc``).
        confusion: ``(C, C)`` int64 counts, rows true class, columns prediction.
        k: neighbours used; n: examples evaluated; split: data description.
    """

    classes: tuple[str, ...]
    accuracy: float
    macro_f1: float
    mean_auc: float
    per_class: tuple[dict[str, Any], ...]
    confusion: np.ndarray
    k: int
    n: int
    split: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "n": self.n,
            "k": self.k,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "mean_auc": self.mean_auc,
            "per_class": list(self.per_class),
        }

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(list(self.per_class))

    def format(self) -> str:
        """Plain-text summary for the terminal."""
        lines = [
            f"{self.split or 'evaluation'}: n={self.n}, K={self.k}",
            f"accuracy  {self.accuracy:.4f}",
            f"macro-F1  {self.macro_f1:.4f}",
            f"mean AUC  {self.mean_auc:.4f}",
            f"{'class':<12}{'support':>8}{'prec':>8}{'recall':>8}{'F1':>8}{'AUC':>8}",
        ]
        for r in self.per_class:
            lines.append(
                f"{r['class']:<12}{r['support']:>8d}{r['precision']:>8.3f}{r['recall']:>8.3f}"
                f"{r['f1']:>8.3f}{r['auc']:>8.3f}"
            )
        return "\n".join(lines)


def evaluate(knn: ExpressionKNN, X: np.ndarray, y: Any, split: str = "") -> ClassificationReport:
    """Score a fitted :class:`ExpressionKNN` on embeddings ``X`` with true labels ``y``.

    AUC-ROC per class is one-vs-rest on the kNN class probabilities
    (:func:`exprsim.metrics.roc_auc`; NaN for a class absent from ``y``); the mean is over
    the defined ones. Macro precision, recall and F1 average the classes in ``y`` or
    predicted (scikit-learn's default): a class neither in ``y`` nor predicted is not
    counted as an F1 of 0. The per-class table lists every class.

    Raises:
        ValueError: not one label per embedding row.
    """
    from exprsim.metrics import classification_scores, per_class_prf, roc_auc

    codes = knn._encode(y)
    n_rows = len(np.atleast_2d(np.asarray(X)))
    if len(codes) != n_rows:
        raise ValueError(f"one label per embedding: {n_rows} rows, {len(codes)} labels")
    proba = knn.predict_proba(X)
    pred = proba.argmax(axis=1)
    n_cls = len(knn.classes_)
    labels = list(range(n_cls))
    scores = classification_scores(codes, pred)
    prec, rec, f1 = per_class_prf(codes, pred, labels=labels)
    aucs = [roc_auc(codes == c, proba[:, c]) for c in labels]
    defined = [a for a in aucs if not np.isnan(a)]
    confusion = np.zeros((n_cls, n_cls), dtype=np.int64)
    np.add.at(confusion, (codes, pred), 1)
    support = confusion.sum(axis=1)
    per_class = tuple(
        {
            "class": str(knn.classes_[c]),
            "support": int(support[c]),
            "precision": float(prec[c]),
            "recall": float(rec[c]),
            "f1": float(f1[c]),
            "auc": float(aucs[c]),
        }
        for c in labels
    )
    return ClassificationReport(
        classes=tuple(str(c) for c in knn.classes_),
        accuracy=scores["accuracy"],
        macro_f1=scores["macro_f1"],
        mean_auc=float(np.mean(defined)) if defined else float("nan"),
        per_class=per_class,
        confusion=confusion,
        k=knn.k_,
        n=len(codes),
        split=split,
    )


# ----------------------------------------------------------------------------- reference set


@array_equality
@dataclass(frozen=True)
class ReferenceSet:
    """Labelled embeddings a kNN classifier votes with.

    Attributes:
        embeddings: ``(N, 16)`` float32.
        labels: ``(N,)`` int64 indices into ``classes``.
        classes: class names (FER+ order).
        model: ``name@version`` of the embedder that made the embeddings.
        k: default number of neighbours (chosen on held-out Training faces).
        meta: how it was built (K grid and held-out scores, sizes, seed).
    """

    embeddings: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    model: str
    k: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # the arrays' sizes, not their values
        n, dim = self.embeddings.shape if self.embeddings.ndim == 2 else (len(self.embeddings), 0)
        return (
            f"ReferenceSet({n} faces, {dim}-d, classes={self.classes!r}, "
            f"model={self.model!r}, k={self.k})"
        )

    @property
    def model_digest(self) -> str | None:
        """The content digest of the model that made the embeddings
        (:func:`exprsim.models.embedder.content_digest`, kept in :attr:`meta`), or ``None``
        for a set built before digests were recorded (told by :attr:`model` alone)."""
        digest = self.meta.get("model_digest") if isinstance(self.meta, dict) else None
        return digest if valid_digest(digest) else None

    def mismatch(self, embedder: Any) -> tuple[str, str] | None:
        """``None`` when ``embedder`` is the model of this set, else the set's model and the
        embedder's as a message names them (:func:`exprsim.models.identity.mismatch`)."""
        model = embedder.config.name_version
        return mismatch(self.model, self.model_digest, model, embedder_digest(embedder))

    def classifier(self, k: int | None = None) -> ExpressionKNN:
        """A fitted :class:`ExpressionKNN` over this set (default K: :attr:`k`)."""
        knn = ExpressionKNN(k=self.k if k is None else k, classes=self.classes)
        return knn.fit(self.embeddings, self.labels)

    def save(self, path: str | Path, dtype: str = "float16") -> Path:
        """Write a compressed ``.npz`` (embeddings in ``dtype``; labels int8), atomically
        (an interrupted write leaves the previous file whole).

        Raises:
            ExprsimError: ``path`` does not end in ``.npz``.
        """
        from exprsim.io import write_atomically

        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise ExprsimError(f"{path}: a reference set is a .npz file")
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomically(path, lambda fh: self._write(fh, dtype))

    def _write(self, fh: Any, dtype: str) -> None:
        from exprsim.io import save_npz

        arrays = {
            "embeddings": self.embeddings.astype(dtype),
            "labels": self.labels.astype(np.int8),
            "classes": np.array(self.classes),
            "model": np.array(self.model),
            "k": np.array(self.k),
            "meta": np.array(json.dumps(self.meta)),
        }
        save_npz(fh, arrays, compressed=True)

    def to_frame(self) -> Any:
        """K-selection table (``k``, held-out accuracy, macro-F1, mean AUC)."""
        import pandas as pd

        return pd.DataFrame(self.meta.get("k_selection", []))


def load_reference_set(path: str | Path | None = None) -> ReferenceSet:
    """Read a reference set (default: the one shipped in the package).

    Raises:
        ModelError: the file does not exist (the shipped one is made after the default
            model is trained) or is malformed.
    """
    shipped = path is None or Path(path) == reference_path()
    path = Path(path) if path is not None else reference_path()
    if not path.is_file():
        why = "it ships with the trained default model" if shipped else "no such file"
        raise ModelError(
            f"no kNN reference set at {printable(str(path))}: {why}; build one with "
            f"`{BUILD_REFERENCE_COMMAND}` (Python: build_reference_set())"
        )
    try:
        _refuse_bombs(path)
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: not a valid reference set ({exc})") from exc
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ModelError(f"{path}: not a valid reference set (a single array, not an .npz)")
    try:
        with z:
            ref = ReferenceSet(
                embeddings=z["embeddings"].astype(np.float32, copy=False),
                labels=_whole_numbers(z["labels"], "labels"),
                classes=tuple(str(c) for c in z["classes"]),
                model=str(z["model"]),
                k=int(_whole_numbers(z["k"], "k")),
                meta=json.loads(str(z["meta"])),
            )
    except (
        OSError, KeyError, ValueError, TypeError, EOFError, RecursionError, zipfile.BadZipFile
    ) as exc:  # fmt: skip
        raise ModelError(f"{path}: not a valid reference set ({exc})") from exc
    problem = _reference_problem(ref)
    if problem:
        raise ModelError(f"{path}: not a valid reference set ({problem})")
    return ref


#: an .npz member that unpacks to more than :data:`BOMB_MAX_BYTES`, or to over
#: :data:`BOMB_MIN_BYTES` at more than :data:`BOMB_RATIO` times its packed size (floats
#: pack to about their size, labels grouped by class to 1:700, deflate at most 1:1032), is
#: refused unread (a 2.5 MB file unpacked to 5.3 GB in memory)
BOMB_RATIO, BOMB_MIN_BYTES, BOMB_MAX_BYTES = 1000, 256 << 20, 4 << 30


def _refuse_bombs(path: Path) -> None:
    """Refuse an ``.npz`` whose members unpack far beyond their size (a zip bomb), from
    the archive's directory, before any is read.

    Raises:
        ValueError: naming the member.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            total = sum(info.file_size for info in infos)
            if total > BOMB_MAX_BYTES:  # all members together: each is read
                raise ValueError(f"its members unpack to {total:,} bytes: not a reference set")
            for info in infos:
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > BOMB_MIN_BYTES and ratio > BOMB_RATIO:
                    raise ValueError(
                        f"{info.filename} unpacks to {info.file_size:,} bytes from "
                        f"{info.compress_size:,}: not a reference set's data"
                    )
                if info.filename.endswith(".npy"):
                    _refuse_big_header(archive, info)
    except (zipfile.BadZipFile, OSError):
        return  # not a zip: np.load says what it is


def _refuse_big_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Refuse an ``.npy`` member whose header declares more data than the member holds
    (NumPy allocates the declared shape before reading: a 1 KB file asked for 16 TiB)."""
    import math

    fmt = np.lib.format
    with archive.open(info) as fh:
        try:
            version = fmt.read_magic(fh)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(fh, max_header_size=10_000)  # type: ignore[call-arg]
        except (ValueError, TypeError, SyntaxError):
            return  # np.load says what is wrong with it
    if dtype.hasobject:  # refused by np.load (allow_pickle=False)
        return
    declared = math.prod(int(n) for n in shape) * dtype.itemsize
    if declared > info.file_size:
        raise ValueError(
            f"{info.filename} declares {declared:,} bytes of data and holds {info.file_size:,}: "
            "not a reference set's data"
        )


def _unsafe_class_name(name: str) -> bool:
    """A class name with a control character (an escape sequence would reach the terminal,
    a newline split a CSV header) or a line separator, or one a spreadsheet would run as
    a formula (the tag-name rule, :func:`exprsim.index.store.check_new_tag_name`)."""
    import unicodedata

    from exprsim.index.store import FORMULA_STARTS

    if name[:1] in FORMULA_STARTS:
        return True
    return any(unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029" for ch in name)


def _reference_problem(ref: ReferenceSet) -> str | None:
    """What is inconsistent in a loaded reference set, or ``None``."""
    emb, labels = ref.embeddings, ref.labels
    if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] == 0:
        return f"embeddings must be a non-empty (N, D) array, got {emb.shape}"
    if labels.shape != (emb.shape[0],):
        return f"labels {labels.shape} do not match embeddings {emb.shape}"
    if not ref.classes or labels.min() < 0 or labels.max() >= len(ref.classes):
        return f"labels must lie in 0..{len(ref.classes) - 1}"
    blank = [i for i, c in enumerate(ref.classes) if not c.strip()]
    if blank:  # every face would be labelled ""
        return f"class {blank[0]} has a blank name"
    unsafe = [c for c in ref.classes if _unsafe_class_name(c)]
    if unsafe:  # printed on terminals, written as CSV headers and cells
        return (
            f"class name {printable(unsafe[0])!r} holds a control character or starts as "
            "a spreadsheet formula (=, +, -, @)"
        )
    repeated = sorted({c for c in ref.classes if ref.classes.count(c) > 1})
    if repeated:  # one probability column per name: a repeated one would hide the other
        return f"class names must differ, {repeated[0]!r} is repeated"
    if ref.k < 1:
        return f"k must be >= 1, got {ref.k}"
    if not np.isfinite(emb).all():
        return "embeddings hold NaN or infinite values"
    zero = np.flatnonzero(~emb.any(axis=1))
    if zero.size:  # a model never gives one: a broken set, which would tie every vote
        return (
            f"{zero.size} of {len(emb)} embeddings are all zero, the first at row "
            f"{int(zero[0])}; rebuild it with `{BUILD_REFERENCE_COMMAND}`"
        )
    return None


def _whole_numbers(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as int64 when they are integers or whole-number floats.

    Raises:
        ValueError: a fractional, infinite or NaN value (``2.7`` would be truncated to 2),
            a value beyond 2**62, or not a number at all.
    """
    values = np.asarray(values)
    if values.dtype.kind == "f":
        bad = not_whole(values)
        if bad.any():
            raise ValueError(f"{what}: {values[bad].flat[0].item()!r} is not a whole number")
        if values.size and np.abs(values).max() > 2.0**62:
            raise ValueError(f"{what}: {np.abs(values).max().item()!r} is too large")
    elif values.dtype.kind not in "iu":
        raise ValueError(f"{what}: integers expected, got dtype {values.dtype}")
    return values.astype(np.int64)


def ferplus_holdout_split(
    n: int, fraction: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split FER+ Training indices into ``(fit, held_out)`` (shared with tagging).

    The same seeded split as training's (:func:`exprsim.data.split.holdout_split`): with the
    defaults the held-out faces are exactly the default model's validation faces, which it
    never trained on, so choices made on them (K, thresholds) are not flattered by memorised
    faces.
    """
    from exprsim.data.split import holdout_split

    return holdout_split(n, fraction, seed)


def embed_fer(
    embedder: Any, images: np.ndarray, progress: bool = False, chunk: int = 256
) -> np.ndarray:
    """Embed ``(N, 48, 48)`` FER crops in chunks, with a progress bar counting faces
    (chunks of 2,048 made a bar of two steps for PublicTest)."""
    from exprsim.progress import progress_bar

    out = []
    with progress_bar(total=len(images), enabled=progress, desc="embed", unit="face") as bar:
        for s in range(0, len(images), chunk):
            out.append(embedder.embed_crops(images[s : s + chunk]))
            bar.update(len(out[-1]))
    return np.concatenate(out) if out else np.zeros((0, 16), np.float32)


def build_reference_set(
    embedder: Any = None,
    out_path: str | Path | None = None,
    data_dir: str | Path | None = None,
    k_grid: Iterable[int] = K_GRID,
    holdout_fraction: float = 0.05,
    seed: int = 0,
    max_faces: int | None = None,
    dtype: str = "float16",
    progress: bool = False,
) -> ReferenceSet:
    """Embed FER+ Training, choose K on a held-out part of it, save the reference set.

    Training rows pixel-identical to a PublicTest row are dropped, so that PublicTest
    numbers stay honest. K is the one with the best held-out accuracy (ties: the smaller
    K); the held-out accuracy, macro-F1 and mean AUC of every K are kept in ``meta``. The
    saved set holds *all* the remaining Training faces.

    Args:
        embedder: the model (default: ``exprsim.load_model()``).
        out_path: where to write it (a ``.npz``); ``None``: not written. The shipped set is
            :func:`reference_path` (write there on purpose, in a checkout).
        data_dir: FER folder (default: ``exprsim.data.fer.default_data_dir()``).
        max_faces: use a random subset of Training (tests, quick looks).
        dtype: storage type of the embeddings (``float16``: ~0.9 MB for 28k faces).

    Returns:
        The :class:`ReferenceSet` (embeddings as stored, i.e. rounded to ``dtype``).

    Raises:
        DataError: too few faces to hold some out for choosing K (``max_faces=1``).
    """
    from exprsim.data.fer import FERPLUS_CLASSES, load_ferplus

    if embedder is None:
        from exprsim.models.embedder import load_model

        embedder = load_model()
    if max_faces is not None and max_faces < 1:
        raise ValueError(f"max_faces must be >= 1, got {max_faces}")
    train = load_ferplus("Training", data_dir, drop_duplicates_of="PublicTest")
    if max_faces is not None and max_faces < len(train):
        pick = np.sort(np.random.default_rng(seed).choice(len(train), max_faces, replace=False))
        train = train.subset(pick)
    fit_idx, held_idx = ferplus_holdout_split(len(train), holdout_fraction, seed)
    if len(fit_idx) == 0 or len(held_idx) == 0:  # before minutes of embedding
        raise DataError(
            f"{len(train)} FER+ Training faces are too few to choose K: {len(held_idx)} held "
            f"out ({holdout_fraction:g} of them), {len(fit_idx)} to vote; use more faces"
        )
    labels = train.majority
    emb = embed_fer(embedder, train.images, progress=progress).astype(dtype).astype(np.float32)
    rows = _k_selection(emb, labels, fit_idx, held_idx, k_grid, len(FERPLUS_CLASSES))
    best_k = max(rows, key=lambda r: (r["accuracy"], -r["k"]))["k"] if rows else 11
    ref = ReferenceSet(
        embeddings=emb,
        labels=labels,
        classes=FERPLUS_CLASSES,
        model=embedder.config.name_version,
        k=int(best_k),
        meta={
            "source": "FER+ Training (majority label; rows duplicated in PublicTest dropped)",
            "n": len(train),
            "n_held_out": len(held_idx),
            "holdout_fraction": holdout_fraction,
            "seed": seed,
            "k_selection": rows,
            "criterion": "held-out accuracy (ties: smaller K)",
            "dtype": dtype,
            **_digest_entry(embedder),
        },
    )
    if out_path is not None:
        out = ref.save(out_path, dtype=dtype)
        log.info("reference set (%d faces, K=%d) written to %s", len(train), best_k, out)
    return ref


def _k_selection(
    emb: np.ndarray,
    labels: np.ndarray,
    fit_idx: np.ndarray,
    held_idx: np.ndarray,
    k_grid: Iterable[int],
    n_cls: int,
) -> list[dict[str, Any]]:
    """Held-out accuracy, macro-F1 and mean AUC of kNN for each K of ``k_grid`` (ascending;
    a K larger than the fitted set is skipped)."""
    from exprsim.metrics import classification_scores, knn_proba, roc_auc

    rows: list[dict[str, Any]] = []
    for k in sorted(set(int(k) for k in k_grid)):
        if k > len(fit_idx) or len(held_idx) == 0:
            continue
        proba = knn_proba(emb[fit_idx], labels[fit_idx], emb[held_idx], k, n_classes=n_cls)
        pred = proba.argmax(axis=1)
        sc = classification_scores(labels[held_idx], pred)  # classes held out or predicted
        aucs = [roc_auc(labels[held_idx] == c, proba[:, c]) for c in range(n_cls)]
        defined = [a for a in aucs if not np.isnan(a)]
        rows.append(
            {
                "k": k,
                "accuracy": sc["accuracy"],
                "macro_f1": sc["macro_f1"],
                "mean_auc": float(np.mean(defined)) if defined else float("nan"),
            }
        )
        log.info(
            "K=%d held-out accuracy %.4f mean AUC %.4f", k, sc["accuracy"], rows[-1]["mean_auc"]
        )
    return rows


def _digest_entry(embedder: Any) -> dict[str, str]:
    """``{"model_digest": ...}`` for a reference set's meta when ``embedder`` has one."""
    digest = embedder_digest(embedder)
    return {} if digest is None else {"model_digest": digest}


def _check_model(reference: ReferenceSet, embedder: Any) -> None:
    from exprsim.index.store import ModelMismatchError

    differ = reference.mismatch(embedder)
    if differ is not None:
        raise ModelMismatchError(
            f"the reference set was made with model {printable(differ[0])}, not {differ[1]}: "
            f"build one for this model with `{BUILD_REFERENCE_COMMAND}` and the same --model "
            "(Python: build_reference_set())"
        )
    dim = getattr(embedder.config, "embedding_dim", None)
    if dim is not None and reference.embeddings.shape[1] != dim:
        raise ModelMismatchError(
            f"the reference set holds {reference.embeddings.shape[1]}-d embeddings, "
            f"the model gives {dim}-d: build one for this model with `{BUILD_REFERENCE_COMMAND}` "
            "and the same --model (Python: build_reference_set())"
        )


def evaluate_reference(
    embedder: Any = None,
    reference: ReferenceSet | None = None,
    data_dir: str | Path | None = None,
    k: int | None = None,
    progress: bool = False,
) -> ClassificationReport:
    """Accuracy, macro-F1 and per-class AUC-ROC on FER+ PublicTest (majority labels)."""
    from exprsim.data.fer import load_ferplus

    if embedder is None:
        from exprsim.models.embedder import load_model

        embedder = load_model()
    reference = reference or load_reference_set()
    _check_model(reference, embedder)
    test = load_ferplus("PublicTest", data_dir)
    emb = embed_fer(embedder, test.images, progress=progress)
    knn = reference.classifier(k)
    return evaluate(knn, emb, test.majority, split=f"FER+ PublicTest ({reference.model})")


# ----------------------------------------------------------------------------- images


@array_equality
@dataclass(frozen=True)
class FacePrediction:
    """The predicted expression of one face.

    ``crop``: the aligned crop, kept by :func:`classify_images` for the first
    :data:`~exprsim.report.html.MAX_GALLERY` faces only (the ones its page shows; ``None``
    after them): 100,000 faces' crops would hold about 4 GB.
    """

    source: str
    face_index: int
    label: str
    proba: dict[str, float]
    quality_ok: bool
    crop: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "source": self.source,
            "face": self.face_index,
            "label": self.label,
            "confidence": self.proba[self.label],
            "quality_ok": self.quality_ok,
        }
        row.update({f"p_{c}": p for c, p in self.proba.items()})
        return row


@dataclass(frozen=True)
class ClassificationResult:
    """Predictions for every face of some images (``classes``: the classes' names, which
    give the ``p_<class>`` columns even when no face was found)."""

    faces: tuple[FacePrediction, ...]
    model: str
    k: int
    classes: tuple[str, ...] = ()
    #: stopped by a Ctrl-C: the faces of the images done (``keep_on_interrupt``)
    interrupted: bool = False

    def __repr__(self) -> str:  # sizes, not every face's crop
        stop = ", interrupted" if self.interrupted else ""
        return (
            f"ClassificationResult({len(self.faces)} faces, model={self.model!r}, k={self.k}, "
            f"classes={self.classes!r}{stop})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "k": self.k, "faces": [f.to_dict() for f in self.faces]}

    def to_frame(self) -> Any:
        import pandas as pd

        rows = [f.to_dict() for f in self.faces]
        fixed = ["source", "face", "label", "confidence", "quality_ok"]
        probs = [f"p_{c}" for c in self.classes]
        extra = dict.fromkeys(k for r in rows for k in r if k not in fixed and k not in probs)
        return pd.DataFrame(rows, columns=[*fixed, *probs, *extra])  # a header even when empty


def classify_images(
    images: Iterable[Any],
    embedder: Any = None,
    reference: ReferenceSet | None = None,
    k: int | None = None,
    detector: Any = None,
    failures: list[Any] | None = None,
    progress: bool = False,
    keep_on_interrupt: bool = False,
) -> ClassificationResult:
    """Predict the expression of every face in ``images`` (paths or arrays; a folder is
    walked for its images, as :func:`~exprsim.apps.summarize.summarize_images` walks it;
    a file named twice, relative and absolute or in a folder given too, is read once).

    ``failures``: if given, unreadable images are skipped and their ``ImageError`` appended.
    ``progress``: show a progress bar (on stderr) while the faces are embedded.
    ``keep_on_interrupt``: a Ctrl-C stops the embedding and the faces done are classified
    (:attr:`ClassificationResult.interrupted` set); else it propagates.

    Raises:
        ModelError: no reference set, or one made with another model.
    """
    reference = reference or load_reference_set()
    if embedder is None:
        from exprsim.models.embedder import load_model

        embedder = load_model()
    _check_model(reference, embedder)
    from exprsim.io import as_inputs, folders_walked, unique_inputs
    from exprsim.models.embedder import faces_of, keep_faces
    from exprsim.report.html import MAX_GALLERY

    knn = reference.classifier(k)
    inputs = list(unique_inputs(folders_walked(as_inputs(images))))  # each file once
    faces = faces_of(embedder, inputs, detector, progress, failures)
    stop: list[BaseException] | None = [] if keep_on_interrupt else None
    kept, embeddings = keep_faces(faces, MAX_GALLERY, stop)
    if not kept:
        return ClassificationResult((), reference.model, knn.k_, _class_names(knn), bool(stop))
    proba = knn.predict_proba(np.stack(embeddings))
    out = []
    for face, p in zip(kept, proba, strict=True):
        out.append(
            FacePrediction(
                source=face.source,
                face_index=face.face_index,
                label=str(knn.classes_[int(p.argmax())]),
                proba={str(c): float(v) for c, v in zip(knn.classes_, p, strict=True)},
                quality_ok=face.quality_ok,
                crop=face.crop,
            )
        )
    return ClassificationResult(tuple(out), reference.model, knn.k_, _class_names(knn), bool(stop))


def _class_names(knn: Any) -> tuple[str, ...]:
    """The classes of a fitted :class:`ExpressionKNN`, as text."""
    return tuple(str(c) for c in getattr(knn, "classes_", ()))


def classification_page(
    result: ClassificationResult, title: str = "Expression classification"
) -> Any:
    """HTML page: each face's crop with its predicted class, and the probability table."""
    from exprsim.apps.compare import display_names
    from exprsim.report.html import Page

    page = Page(title, subtitle=f"kNN, K={result.k}, model {result.model}")
    counts = Counter(f.label for f in result.faces)
    page.heading("Faces per emotion")
    page.table(
        [{"emotion": c, "faces": n} for c, n in sorted(counts.items(), key=lambda kv: -kv[1])]
        + [{"emotion": "all", "faces": len(result.faces)}]
    )
    page.heading("Every face")
    names = display_names([f.source for f in result.faces])  # paths when two names collide
    page.gallery(
        [f.crop for f in result.faces],
        captions=[
            f"{name}#{f.face_index}: {f.label} ({f.proba[f.label]:.2f})"
            for name, f in zip(names, result.faces, strict=True)
        ],
        size=112,
    )
    page.table(result.to_frame())
    return page
