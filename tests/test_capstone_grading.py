"""A6 (issue 22 item 3, issue 20 item 2): a blank/stub capstone scores 0 with "not implemented"; the profile is
chosen in one visible line (the environment wins); gpu-profile sizes come from the memory estimator and fit the
GPU found, and never change what the grader evaluates."""
from __future__ import annotations

import nbformat
import pytest
import torch

import setr_edu
from setr_edu import checks
from setr_edu.checks import capstone
from setr_edu.data import SyntheticContextDataset
from setr_edu.profile import ENV_VAR


def test_untrained_model_scores_zero_and_says_not_implemented():
    """What a stub notebook hands in: the model built in the notebook, never trained."""
    S = capstone.capstone_scale()
    K = SyntheticContextDataset(1, img_size=S.img_size).num_classes
    setr_edu.seed_everything(0)
    model = setr_edu.build_setr("naive", num_classes=K, aux=False, **S.model_kwargs)
    r = checks.check_trained_model(model, verbose=False)
    assert r.score == 0 and not r.passed and "not implemented" in r.report(), r.report()


def test_notebook_chooses_the_profile_in_one_visible_line():
    nb = nbformat.read("book/assignments/a6_capstone.ipynb", as_version=4)
    lines = [line for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()
             if line.startswith("PROFILE = ")]
    assert lines == ['PROFILE = "cpu"  # the profile you are graded under: "cpu" (default), "gpu" or "ci"']
    student = nbformat.read("book/assignments/student/a6_capstone.ipynb", as_version=4)
    assert any(c.source.count(lines[0]) for c in student.cells)


def test_use_profile_lets_the_environment_win(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "ci")
    assert capstone.use_profile("gpu").name == "ci"
    monkeypatch.delenv(ENV_VAR)
    assert capstone.use_profile("cpu").name == "cpu"
    import os

    assert os.environ[ENV_VAR] == "cpu"  # the trained-model check grades under the same profile
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(ValueError, match="unknown profile"):
        capstone.use_profile("gpu-large")


class FakeProps:
    def __init__(self, gib):
        self.total_memory = int(gib * 2**30)


@pytest.mark.parametrize("gib,want", [(16, (384, 32)), (3, (384, 16)), (1.0, (256, 8))])
def test_gpu_scale_fits_the_gpu(monkeypatch, gib, want):
    """The widest model and largest batch whose estimated training memory (from setr_edu.perf.memory's
    estimator, asked with AdamW's two states) fits 60% of the GPU; the grader's size stays fixed."""
    import setr_edu.perf.memory as memory

    asked = []

    def fake_estimate(factory, shape, optimizer_states=1, **kw):  # GiB ~ width * depth * batch, as measured
        m = factory()
        width, depth, batch = m.encoder.blocks[0].norm1.normalized_shape[0], len(m.encoder.blocks), shape[0]
        asked.append((width, batch, optimizer_states))
        return memory.MemoryEstimate(0, 0, 0, int(2.8 * 2**30 * width * depth * batch / (384 * 8 * 32)), batch)

    monkeypatch.setattr(memory, "estimate_training_memory", fake_estimate)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: FakeProps(gib))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "Unknown GPU")
    S = capstone.capstone_scale("gpu")
    assert (S.model_kwargs["embed_dim"], S.batch_size) == want and all(o == 2 for *_, o in asked)
    assert (S.img_size, S.num_val, S.iters) == (capstone.GPU_IMG, capstone.GPU_VAL, capstone.GPU_ITERS)
    assert capstone.capstone_scale("gpu", fit=False).img_size == S.img_size  # what the grader evaluates at


def test_nbgrader_export_gives_cells_time_to_train(tmp_path):
    """nbgrader interrupts any cell after 30 s by default; the exported course's config lets A6 train."""
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    sys.path.insert(0, str(Path("book/_scripts").resolve()))
    import make_student_notebooks as msn

    msn.export_nbgrader(tmp_path)
    c = SimpleNamespace(Execute=SimpleNamespace())
    exec((tmp_path / "nbgrader_config.py").read_text(), {"get_config": lambda: c})
    assert c.Execute.timeout >= 1800
    (tmp_path / "nbgrader_config.py").write_text("# the instructor's own\n")
    msn.export_nbgrader(tmp_path)
    assert (tmp_path / "nbgrader_config.py").read_text() == "# the instructor's own\n"  # never overwritten
