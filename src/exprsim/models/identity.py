"""Which model made an embedding: its ``name@version`` and, where known, its content digest.

Embeddings compare only when one model made them. Indexes, kNN reference sets and tag
references record the ``name@version`` of the model that made them, and since this module
the model's :func:`~exprsim.models.embedder.content_digest` beside it: two folders may share
a name and version with other weights or settings (a fine-tune saved under the shipped
name, two ``exprsim train`` runs that both default to version 1). Two records are of one
model when their names are equal and their digests are too, or one of the digests is not
known (a file written before digests were recorded, an embedder built by hand): those are
told apart by name alone, as before.
"""

from __future__ import annotations

import re
from typing import Any

#: the key of a Parquet table's metadata that holds its model's content digest
#: (`exprsim embed -o x.parquet`; read by ``FaceIndex.add_table``)
DIGEST_KEY = b"exprsim.model_digest"

#: a content digest as :func:`~exprsim.models.embedder.content_digest` writes it
DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{16}")


def embedder_digest(embedder: Any) -> str | None:
    """The content digest of ``embedder`` (``Embedder.digest``), or ``None`` when it has none
    (built by hand, or any object with ``embed_crops`` and a ``config``)."""
    digest = getattr(embedder, "digest", None)
    return digest if valid_digest(digest) else None


def recorded_digest(metadata: Any) -> str | None:
    """The content digest a Parquet schema's ``metadata`` records (:data:`DIGEST_KEY`), or
    ``None`` (no metadata, no such key, or not a digest)."""
    raw = metadata.get(DIGEST_KEY) if isinstance(metadata, dict) else None
    digest = raw.decode("ascii", "replace") if isinstance(raw, bytes) else None
    return digest if valid_digest(digest) else None


def valid_digest(value: Any) -> bool:
    """Whether ``value`` is a content digest (anything else read from a file is unknown)."""
    return isinstance(value, str) and DIGEST_PATTERN.fullmatch(value) is not None


def same_model(
    name: str | None, digest: str | None, other: str | None, other_digest: str | None
) -> bool:
    """Whether the model ``name`` with ``digest`` is the model ``other`` with ``other_digest``:
    equal names, and equal digests where both are known."""
    if name != other:
        return False
    return not (valid_digest(digest) and valid_digest(other_digest) and digest != other_digest)


def described(name: str, digest: str | None, other: str | None, other_digest: str | None) -> str:
    """``name`` for a message that sets it against ``other``: with its digest when the names
    are equal (they differ in content: "exprnet_ens@8 (content sha256:...)"), else alone."""
    if name == other and valid_digest(digest) and valid_digest(other_digest):
        return f"{name} (content {digest})"
    return name


def mismatch(
    stored: str, stored_digest: str | None, model: str, digest: str | None
) -> tuple[str, str] | None:
    """``None`` when ``stored`` (with ``stored_digest``) is the model ``model`` (with
    ``digest``), else the two as messages name them (:func:`described`)."""
    if same_model(stored, stored_digest, model, digest):
        return None
    return described(stored, stored_digest, model, digest), described(
        model, digest, stored, stored_digest
    )


def index_mismatch(index: Any, embedder: Any) -> tuple[str, str] | None:
    """:func:`mismatch` of the model of the embeddings an index holds (its ``model`` and
    ``model_digest``) and ``embedder``'s; ``None`` too while the index names no model."""
    stored = index.model
    if stored is None:
        return None
    return mismatch(
        stored,
        getattr(index, "model_digest", None),
        embedder.config.name_version,
        embedder_digest(embedder),
    )
