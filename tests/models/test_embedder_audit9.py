"""The embedder as a long-lived library (ninth audit): forked children, threads, and
typed errors."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from exprsim.errors import ExprsimError, ModelError
from exprsim.samples import sample_dir

PHOTOS = sorted(sample_dir().glob("*.jpg"))

#: a model used in the parent, then in a forked child; the parent kills a child that
#: hangs (the torch / GNU OpenMP fork deadlock) after 60 s
FORK = """
import os, sys, time, signal, numpy as np
import exprsim.models.embedder as E
on_import = getattr(E, "_fork_hook", None)
import torch
torch.set_num_threads(2)  # the parent's OpenMP pool: a child used to hang in it
m = E.load_model()
crops = np.zeros((2, 112, 112, 3), np.uint8)
ref = m.embed_crops(crops)
pid = os.fork()
if pid == 0:
    out = m.embed_crops(crops)
    ok = np.allclose(out, ref, atol=1e-5) and torch.get_num_threads() == 1
    os._exit(0 if ok else 3)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child", os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.05)
else:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print("child hung")
print("parent threads", torch.get_num_threads())
print("hook", on_import, getattr(E, "_fork_hook", None))
"""


@pytest.mark.slow  # a fresh interpreter imports torch and loads the model: ~5 s
def test_a_forked_child_can_use_the_parents_model():
    r = subprocess.run([sys.executable, "-c", FORK], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["child 0", "parent threads 2", "hook False True"], r.stdout


def test_embed_with_proba_without_a_classifier_is_a_model_error(random_embedder):
    crops = np.zeros((2, 48, 48), np.uint8)
    with pytest.raises(ModelError, match="no emotion classifier") as exc:
        random_embedder.embed_with_proba(crops)  # exprnet_s: no classifier of its own
    assert isinstance(exc.value, ExprsimError) and isinstance(exc.value, ValueError)
    assert "\n" not in str(exc.value)
    assert random_embedder.emotion_proba(crops) is None


def test_embed_images_of_one_image_from_several_threads_gives_the_serial_answers():
    """One image goes through the process's shared detector: two threads at once used to
    get LiteRT's raw RuntimeError, or another image's faces."""
    pytest.importorskip("mediapipe")
    from exprsim.models.embedder import load_model

    model = load_model()
    serial = {p: model.embed_images([p]) for p in PHOTOS}
    jobs = PHOTOS * 3
    with ThreadPoolExecutor(2) as ex:
        got = list(ex.map(lambda p: model.embed_images([p]), jobs))
    for p, faces in zip(jobs, got, strict=True):
        assert len(faces) == len(serial[p]), p.name
        for a, b in zip(faces, serial[p], strict=True):
            np.testing.assert_allclose(a.aligned.face.box, b.aligned.face.box, atol=1e-3)
            np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)
