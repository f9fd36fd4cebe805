"""Round 37 (the CLI on both engines): `video --tags URI` printed a PostgreSQL URI's
password in two of its refusals (no reference faces; references of another model), where
every other command shows ``user:***@``."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex
from exprsim.video.pipeline import load_tag_references

SECRET = "s3cretpw"


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.netloc.rsplit("@", 1)[-1] if "@" in parts.netloc else parts.netloc
    return urlunsplit(parts._replace(netloc=f"{user}:{SECRET}@{host}"))


class _Model:
    class config:  # an Embedder's config, as far as the check reads it
        name_version = "other@2"

    digest = None


def test_the_password_of_a_postgresql_uri_is_never_shown(pg_url: str) -> None:
    url = _with_password(pg_url)
    with FaceIndex(url):
        pass  # an index without reference faces
    with pytest.raises(ExprsimError, match="holds no reference faces") as said:
        load_tag_references(url)
    assert SECRET not in str(said.value) and "***" in str(said.value)
    with FaceIndex(url) as ix:
        ix.add_tag_reference("smile", np.eye(1, 16, dtype=np.float32)[0], "m@1")
    with pytest.raises(ExprsimError, match="references were made with m@1") as said:
        load_tag_references(url, embedder=_Model())
    assert SECRET not in str(said.value) and "***" in str(said.value)
