"""Round 36: two models that share a ``name@version`` with other weights or settings are
told apart by a content digest recorded beside the name (index, kNN reference set, tag
references, Ray stamp, saved tag threshold); a copy, a version or a tag threshold alone
is the same content; files written before digests were recorded keep working."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from exprsim.apps.classify import (
    ReferenceSet,
    _check_model,
    build_reference_set,
    load_reference_set,
)
from exprsim.apps.search import search
from exprsim.apps.tag import Tagger, save_tag_threshold
from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex, ModelMismatchError
from exprsim.models.embedder import Embedder, content_digest, load_model
from exprsim.models.identity import mismatch, same_model
from exprsim.video.pipeline import index_tag_references
from face_tables import unit_faces
from model_folders import copy_model, edit_config

NAME = "exprnet_ens@8"
A, B = "sha256:" + "a" * 16, "sha256:" + "b" * 16


def _perturb_weights(folder: Path) -> None:
    state = load_file(str(folder / "model.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[key] = state[key] * 1.25
    save_file(state, str(folder / "model.safetensors"))


def _add(ix: FaceIndex, n: int, seed: int, source: str = "p", digest: str | None = None) -> None:
    """Store ``n`` random unit faces (``FaceIndex.add_table``) as embeddings of ``NAME``."""
    ix.add_table(
        unit_faces([f"/x/{source}{i}.jpg" for i in range(n)], seed), NAME, model_digest=digest
    )


def _unit(seed: int) -> np.ndarray:
    return unit_faces(["/x/r.jpg"], seed)[[f"e{i}" for i in range(16)]].to_numpy(np.float32)[0]


def _stub(digest: str | None, name: str = NAME) -> SimpleNamespace:
    model, version = name.split("@")
    return SimpleNamespace(
        config=SimpleNamespace(name_version=name, model=model, version=version, embedding_dim=16),
        digest=digest,
        embedding_dim=16,
    )


# -- the digest


def test_the_digest_follows_weights_and_settings_not_copies_versions_or_thresholds(
    tmp_path: Path,
) -> None:
    shipped = content_digest("default")
    assert content_digest(copy_model(tmp_path, "copy")) == shipped  # another path
    renamed = copy_model(tmp_path, "renamed")
    edit_config(renamed, lambda c: c.update(version="8-copy", tag_threshold=0.4))
    assert content_digest(renamed) == shipped
    weights = copy_model(tmp_path, "weights")
    _perturb_weights(weights)
    setting = copy_model(tmp_path, "setting")
    edit_config(setting, lambda c: c["model_kwargs"].update(readout_angle=30.0))
    assert len({shipped, content_digest(weights), content_digest(setting)}) == 3


def test_load_model_carries_the_digest_and_a_hand_built_embedder_has_none(tmp_path: Path) -> None:
    m = load_model()
    assert m.digest == content_digest("default")
    assert Embedder(m.model, m.config).digest is None


def test_same_model_compares_digests_only_where_both_are_known() -> None:
    assert same_model(NAME, A, NAME, A) and same_model(NAME, None, NAME, B)
    assert same_model(NAME, A, NAME, "not a digest")
    assert not same_model(NAME, A, NAME, B)
    assert not same_model(NAME, A, "exprnet_ens@7", A)
    assert mismatch(NAME, A, NAME, B) == (f"{NAME} (content {A})", f"{NAME} (content {B})")
    assert mismatch("x@1", A, "y@1", B) == ("x@1", "y@1")  # other names: no digest shown


# -- the index


def test_an_index_refuses_another_content_under_its_models_name(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        _add(ix, 3, 0, digest=A)
        assert ix.model_digest == A
    with FaceIndex(db) as ix:  # another process, another model of that name
        with pytest.raises(ModelMismatchError, match=r"content sha256:a+\).*content sha256:b+"):
            _add(ix, 2, 1, "q", digest=B)
        _add(ix, 2, 2, "r", digest=A)  # the same content: taken
        _add(ix, 1, 3, "s")  # no digest known: by name, as before
        assert len(ix) == 6 and ix.model_digest == A
        assert ix.info().to_dict()["model_digest"] == A
    with FaceIndex(db) as ix, pytest.raises(ModelMismatchError, match="content"):
        ix.add_tag_reference("smile", _unit(4), NAME, model_digest=B)


def test_one_faceindex_refuses_two_contents_of_one_name(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "f.db") as ix:
        ix.check_model(NAME, A)
        with pytest.raises(ModelMismatchError, match="two models named"):
            ix.check_model(NAME, B)


def test_an_index_written_before_digests_takes_the_first_writers_then_refuses_others(
    tmp_path: Path,
) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        _add(ix, 2, 0)  # no digest: as an older exprsim wrote it
        assert ix.model_digest is None
    with FaceIndex(db) as ix:
        _add(ix, 1, 1, "q", digest=A)
        assert ix.model_digest == A
    with FaceIndex(db) as ix, pytest.raises(ModelMismatchError):
        _add(ix, 1, 2, "r", digest=B)


def test_an_emptied_index_takes_another_content_and_a_stale_record_is_not_read(
    tmp_path: Path,
) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        _add(ix, 2, 0, digest=A)
        ix.remove(["/x"])
        assert len(ix) == 0
    with FaceIndex(db) as ix:
        _add(ix, 1, 1, digest=B)
        assert ix.model_digest == B
    con = sqlite3.connect(db)  # an older exprsim moved the emptied index to another model
    con.execute("UPDATE meta SET value = 'other@1' WHERE key = 'model'")
    con.commit()
    con.close()
    with FaceIndex(db, create=False) as ix:
        assert ix.model == "other@1" and ix.model_digest is None


def test_search_refuses_an_index_of_another_content(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        _add(ix, 3, 0, digest=A)
    with (
        FaceIndex(db, create=False) as ix,
        pytest.raises(ModelMismatchError, match=r"content sha256:a+\), the query model"),
    ):
        search(np.zeros((8, 8, 3), np.uint8), ix, embedder=_stub(B))


def test_reembed_redoes_an_index_of_another_content_under_the_same_name(tmp_path: Path) -> None:
    from exprsim.samples import sample_path

    db = tmp_path / "f.db"
    fake = copy_model(tmp_path, "fake")
    _perturb_weights(fake)
    other = load_model(str(fake))
    with FaceIndex(db, embedder=other) as ix:
        ix.add([sample_path("grace_hopper.jpg")])
        assert ix.model_digest == other.digest
        before = np.stack([r.embedding for r in ix.records()])
    with FaceIndex(db, embedder=load_model()) as ix:
        report = ix.reembed()
        assert report.n_faces == len(before) > 0
        assert ix.model_digest == content_digest("default")
        after = np.stack([r.embedding for r in ix.records()])
        assert np.abs(after - before).max() > 1e-3
        assert ix.reembed().n_faces == 0  # now of the same content: nothing to do


# -- tags


def test_tag_references_of_another_content_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        ix.add_tag_reference("smile", _unit(0), NAME, model_digest=A)
    with FaceIndex(db, create=False) as ix:
        with pytest.raises(ExprsimError, match=r"content sha256:a+\), the embedder is"):
            index_tag_references(ix, _stub(B))
        assert index_tag_references(ix, _stub(A)) is not None
        assert index_tag_references(ix, _stub(None)) is not None  # by name, as before
        with pytest.raises(ModelMismatchError, match="content"):
            Tagger(ix, embedder=_stub(B))._refuse_other_model("made with {stored}, not {model}")


def test_a_saved_tag_threshold_is_refused_when_the_settings_changed_meanwhile(
    tmp_path: Path,
) -> None:
    folder = copy_model(tmp_path, "m")
    identity = load_model(str(folder)).digest
    edit_config(folder, lambda c: c["model_kwargs"].update(readout_angle=30.0))  # weights kept
    with pytest.raises(ExprsimError, match="changed while it was calibrated"):
        save_tag_threshold(folder, 0.5, identity=identity)
    assert "tag_threshold" not in json.loads((folder / "config.json").read_text()) or (
        json.loads((folder / "config.json").read_text())["tag_threshold"] != 0.5
    )
    save_tag_threshold(folder, 0.5, identity=content_digest(folder))


# -- kNN reference sets


def test_the_shipped_reference_set_is_of_the_shipped_models_content() -> None:
    assert load_reference_set().model_digest == content_digest("default")
    _check_model(load_reference_set(), load_model())


def test_a_reference_set_of_another_content_is_refused_and_an_old_one_is_not(
    tmp_path: Path,
) -> None:
    ref = load_reference_set()
    other = dataclasses.replace(ref, meta={**ref.meta, "model_digest": A})
    with pytest.raises(ModelMismatchError, match=r"content sha256:a+\), not exprnet_ens@8"):
        _check_model(other, load_model())
    old = dataclasses.replace(ref, meta={k: v for k, v in ref.meta.items() if k != "model_digest"})
    path = old.save(tmp_path / "old.npz")
    assert load_reference_set(path).model_digest is None
    _check_model(load_reference_set(path), load_model())  # by name, as before


@pytest.mark.data
def test_a_built_reference_set_records_the_digest(tmp_path: Path) -> None:
    from exprsim.data.fer import default_data_dir

    if not (default_data_dir() / "fer2013new.csv.gz").exists():
        pytest.skip("FER2013 data not available (../shared/data)")
    ref = build_reference_set(load_model(), max_faces=60, k_grid=(3,))
    assert ref.model_digest == content_digest("default")


def test_a_reference_set_without_meta_digest_reads_as_unknown() -> None:
    ref = ReferenceSet(np.eye(2, 16, dtype=np.float32), np.array([0, 1]), ("a", "b"), NAME, 1)
    assert ref.model_digest is None
    ref = dataclasses.replace(ref, meta={"model_digest": "sha256:nothex"})
    assert ref.model_digest is None


# -- Ray's folder stamp


def test_a_ray_folder_of_another_content_is_refused_and_an_old_stamp_resumes(
    tmp_path: Path,
) -> None:
    from exprsim.scale.ray_embed import STAMP_NAME, _check_stamp, _stamp

    setting = copy_model(tmp_path, "setting")
    edit_config(setting, lambda c: c["model_kwargs"].update(readout_angle=30.0))
    out = tmp_path / "out"
    out.mkdir()
    _check_stamp(out, _stamp("default", None, 100))
    with pytest.raises(ExprsimError, match="holds shards embedded with content"):
        _check_stamp(out, _stamp(setting, None, 100))  # weights alike: "model" is equal
    old = json.loads((out / STAMP_NAME).read_text())
    del old["content"]
    (out / STAMP_NAME).write_text(json.dumps(old))  # a stamp of an earlier exprsim
    _check_stamp(out, _stamp("default", None, 100))
    assert json.loads((out / STAMP_NAME).read_text())["content"] == content_digest("default")


def test_exprsim_models_names_the_content_digest_messages_name(capsys) -> None:
    from exprsim.cli import main

    assert main(["models"]) == 0
    assert f"content {content_digest('default')}" in capsys.readouterr().out


def test_the_digest_is_of_the_settings_not_of_how_the_file_spells_them(tmp_path: Path) -> None:
    shipped = content_digest("default")
    spelled = copy_model(tmp_path, "spelled")  # 15 for 15.0, a default left out or spelled out
    cfg = json.loads((spelled / "config.json").read_text())
    angle = cfg["model_kwargs"].get("readout_angle")
    if isinstance(angle, float) and angle.is_integer():
        cfg["model_kwargs"]["readout_angle"] = int(angle)
    cfg["preprocess"].pop("border", None)
    cfg["tag_threshold"] = None
    (spelled / "config.json").write_text(json.dumps(cfg))
    assert content_digest(spelled) == shipped
    with_default = copy_model(tmp_path, "with-default")
    edit_config(with_default, lambda c: c.update(embedding_dim=16))  # the default, spelled out
    assert content_digest(with_default) == shipped
    other = copy_model(tmp_path, "other")
    edit_config(other, lambda c: c["preprocess"].update(border="replicate"))  # not the default
    assert content_digest(other) != shipped


def test_a_faceindex_follows_a_re_embedding_by_another_process(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db) as long:
        _add(long, 2, 0, digest=A)
        with FaceIndex(db) as other:  # re-embedded elsewhere to B (as `index reembed`)
            other._db.execute(
                "UPDATE meta SET value = ? WHERE key = 'model_digest'", (f"{NAME} {B}",)
            )
        _add(long, 1, 1, "q", digest=B)  # B is the index's now: taken
        with pytest.raises(ModelMismatchError):
            long.check_model(NAME, A)  # A is not the index's any more
