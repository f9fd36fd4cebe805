"""Thirteenth robustness round: the Python API's face rows say what the CLI's say."""

from __future__ import annotations

import shutil

from exprsim.samples import sample_path


def test_face_dicts_carry_the_reasons_a_face_failed(random_embedder, tmp_path):
    """Audit: `FaceEmbedding.to_dict()` had no `reasons`; a rejected face was only
    `quality_ok: False`."""
    from dataclasses import replace

    (fe,) = random_embedder.embed_images([sample_path("grace_hopper.jpg")])
    assert fe.to_dict()["reasons"] == ",".join(fe.aligned.quality.reasons)
    q = replace(fe.aligned.quality, ok=False, reasons=("blur", "yaw"))
    bad = replace(fe, aligned=replace(fe.aligned, quality=q))
    assert bad.to_dict()["reasons"] == "blur,yaw" and bad.to_dict()["quality_ok"] is False


def test_embed_files_and_analyze_files_take_a_file_named_twice_once(random_embedder, tmp_path):
    """Audit: a folder plus a file in it gave 17 rows where `exprsim embed` gave 15."""
    from exprsim.apps.embed import embed_files
    from exprsim.faces.pipeline import analyze_files

    folder = tmp_path / "album"
    folder.mkdir()
    for name in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg"):
        shutil.copyfile(sample_path(name), folder / name)
    (folder / "link.jpg").symlink_to(folder / "grace_hopper.jpg")
    twice = [folder, folder / "grace_hopper.jpg", tmp_path / "album" / ".." / "album"]
    rows = embed_files(twice, random_embedder).rows
    assert len(rows) == 2 and len(analyze_files(twice).rows) == 2
