"""Course assignments (issue 5): graders, generated student notebooks, and the grading command.

* every grader passes the reference solution, i.e. the ``solution``-tagged cells of the instructor notebook;
* every grader fails the generated stub with "not implemented yet";
* plausible wrong implementations (mutations of the reference solutions, one bug each) fail with the right
  explanation: at least two per assignment;
* the student notebooks are up to date and, executed, stop only at ``NotImplementedError``;
* ``grade`` writes the right CSV for a solved, a stub, an invalid-JSON and a never-ending notebook.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from setr_edu import checks
from setr_edu.checks import ASSIGNMENTS, grade

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book" / "assignments"
sys.path.insert(0, str(ROOT / "book" / "_scripts"))
import make_student_notebooks as msn  # noqa: E402
from test_grader_variants import first_hint  # noqa: E402

PREAMBLE = """
import math
import torch
import torch.nn.functional as F
from torch import nn
import setr_edu
from setr_edu import checks
from setr_edu.engine.metrics import SegmentationMetric
P = setr_edu.get_profile()
KIND = "pup"
"""
NOTEBOOK = {aid: a.notebook for aid, a in ASSIGNMENTS.items()}


def solution_cells(aid: str) -> list[str]:
    nb = nbformat.read(BOOK / NOTEBOOK[aid], as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and "solution" in c.metadata.get("tags", [])]


def namespace(aid: str, stub: bool = False, mutate: tuple = ()) -> dict:
    """Execute an assignment's solution cells, stubbed like the student version, or with text mutations
    ``((old, new), ...)`` (a bug planted in the reference solution)."""
    ns: dict = {"__name__": f"assignment_{aid}"}
    exec(PREAMBLE, ns)
    applied = set()
    for i, src in enumerate(solution_cells(aid)):
        if stub:
            src, _ = msn.strip_regions(src, msn.BEGIN, msn.END,
                                       lambda ind: [f"{ind}# YOUR CODE HERE", f"{ind}raise NotImplementedError()"], aid)
        for old, new in mutate:
            if old in src:
                src = src.replace(old, new)
                applied.add(old)
        exec(compile(src, f"<{aid} solution cell {i}>", "exec"), ns)
    missing = [old for old, _ in mutate if old not in applied]
    assert not missing, f"mutation(s) {missing} not found in {aid}'s solution cells"
    return ns


def run(call: str, ns: dict):
    """Evaluate a grading call like ``check_attention(MyAttention)`` quietly in ``ns``."""
    return eval(call[:-1] + ", verbose=False)", {**vars(checks), **ns})


# --------------------------------------------------------------------------------------------- right and stubs
PARTS = [(aid, p) for aid, a in ASSIGNMENTS.items() for p in a.parts if p.name != "trained_model"]


@pytest.mark.parametrize("aid,part", PARTS, ids=[f"{a}-{p.name}" for a, p in PARTS])
def test_grader_passes_solution_and_fails_stub(aid, part):
    result = run(part.call, namespace(aid))
    assert result.passed and result.score == part.points == result.max_score, result.report()
    stub = run(part.call, namespace(aid, stub=True))
    assert not stub.passed and stub.score == 0
    assert "not implemented yet" in stub.report()


@pytest.mark.parametrize("kind,cls", [("naive", "NaiveHead"), ("mla", "MLADecoder")])
def test_decoder_grader_passes_the_other_decoders(kind, cls):
    ns = namespace("A4")
    assert checks.check_decoder(ns[cls], kind=kind, verbose=False).passed


# ----------------------------------------------------------------------------- plausible wrong implementations
# (assignment, call, (text in the reference solution, the buggy replacement), words the explanation must contain)
WRONG = [
    ("A1", "check_patchify(patchify)", ("x.permute(0, 2, 4, 1, 3, 5)", "x.permute(0, 4, 2, 1, 3, 5)"),
     "column-major"),
    ("A1", "check_patchify(patchify)", ("x.permute(0, 2, 4, 1, 3, 5)", "x.permute(0, 2, 4, 3, 5, 1)"),
     "(row, column, channel)"),
    ("A1", "check_patch_embedding(MyPatchEmbedding)", ("self.proj(patchify(x, self.patch_size))",
                                                       "self.proj(patchify(x, self.patch_size)).transpose(1, 2)"),
     "swap the last two dimensions"),
    ("A1", "check_patch_embedding(MyPatchEmbedding)", ("patch_size, embed_dim)", "patch_size, embed_dim, bias=False)"),
     "the bias is missing"),
    ("A2", "check_scaled_dot_product(scaled_dot_product)", (" / math.sqrt(d)", ""), "not scaled"),
    ("A2", "check_scaled_dot_product(scaled_dot_product)", ("softmax(dim=-1)", "softmax(dim=-2)"),
     "wrong dimension (the queries"),
    ("A2", "check_attention(MyAttention)", ("reshape(B, N, 3, self.num_heads, self.head_dim)",
                                            "reshape(B, N, 3, self.head_dim, self.num_heads)"),
     "split along the wrong axis"),
    ("A2", "check_attention(MyAttention)", ("out.transpose(1, 2).reshape(B, N, D)", "out.reshape(B, N, D)"),
     "plain reshape"),
    ("A2", "check_scaled_dot_product(scaled_dot_product)", ("/ math.sqrt(d)", "/ math.sqrt(q.shape[1] * d)"),
     "sqrt(D)"),
    ("A3", "check_transformer_block(MyBlock)", (("x = x + self.attn(self.norm1(x))", "x = self.norm1(x + self.attn(x))"),
                                                ("x = x + self.mlp(self.norm2(x))", "x = self.norm2(x + self.mlp(x))")),
     "post-norm"),
    ("A3", "check_transformer_block(MyBlock)", ("x = x + self.attn(self.norm1(x))", "x = self.attn(self.norm1(x))"),
     "residual connection around attention is missing"),
    ("A3", "check_transformer_block(MyBlock)", ("nn.GELU()", "nn.ReLU()"), "uses ReLU"),
    ("A3", "check_pos_embed_resize(resize_pos_embed)", ('mode="bilinear", align_corners=False', 'mode="bilinear", align_corners=True'),
     "align_corners=True"),
    ("A3", "check_pos_embed_resize(resize_pos_embed)", ("grid = grid.reshape(1, old_grid[0], old_grid[1], D).permute(0, 3, 1, 2)",
                                                        "grid = grid.reshape(1, old_grid[1], old_grid[0], D).permute(0, 3, 1, 2)\n"
                                                        "    new_grid = tuple(new_grid)[::-1]"),
     "read as (w, h)"),
    ("A3", "check_pos_embed_resize(resize_pos_embed)", ("return torch.cat([cls_pos, grid], dim=1)", "return grid"),
     "class token's entry is missing"),
    ("A4", "check_decoder(MyHead, kind='pup')", ("x = self.norm(z)", "x = z"), "not normalised"),
    ("A4", "check_decoder(MyHead, kind='pup')", ("x = F.interpolate(x, scale_factor=2, mode=\"bilinear\", align_corners=False)",
                                                 "x = F.interpolate(x, scale_factor=2, mode=\"nearest\")"),
     "nearest-neighbour"),
    ("A4", "check_decoder(MLADecoder, kind='mla')", (("for i in (2, 1, 0):", "for i in (1, 2, 3):"),
                                                     ("m[i] = m[i + 1] + p[i]", "m[i] = m[i - 1] + p[i]")),
     "runs the wrong way"),
    ("A4", "check_decoder(MyHead, kind='pup')", (("            x = stage(x)  # (B, C, h', w')\n", ""),
                                                 ("align_corners=False)\n        return", "align_corners=False)\n"
                                                  "            x = stage(x)\n        return")),
     "upsamples before its conv"),
    ("A4", "check_decoder(MLADecoder, kind='mla')", ('mode="bilinear", align_corners=True)', 'mode="bilinear", align_corners=False)'),
     "align_corners=False; the official SETR-MLA uses align_corners=True"),
    ("A5", "check_confusion_matrix(confusion_matrix)", ("target[keep].long() * num_classes + pred[keep].long()",
                                                        "pred[keep].long() * num_classes + target[keep].long()"),
     "rows and columns are swapped"),
    ("A5", "check_confusion_matrix(confusion_matrix)", ("keep = target != ignore_index", "keep = target >= 0"),
     "ignore pixels (255)"),
    ("A5", "check_iou(iou_from_confusion)", ("return tp / union", "return torch.nan_to_num(tp / union)"), "must be NaN"),
    ("A5", "check_iou(iou_from_confusion)", ("union = conf.sum(0) + conf.sum(1) - tp", "union = conf.sum(1)"),
     "per-class accuracy"),
    ("A5", "check_miou(mean_iou)", ("float(torch.nanmean(iou_from_confusion(conf)))",
                                    "float(torch.nan_to_num(iou_from_confusion(conf)).mean())"),
     "averaged in as 0"),
    ("A5", "check_miou(mean_iou)", ("for pred, target in pairs:\n        conf += confusion_matrix(pred, target, num_classes, ignore_index)\n"
                                    "    return float(torch.nanmean(iou_from_confusion(conf)))",
                                    "return sum(float(torch.nanmean(iou_from_confusion(confusion_matrix(p, t, num_classes))))\n"
                                    "               for p, t in pairs) / len(pairs)"),
     "averaged per image"),
    ("A6", "check_worst_images(worst_images)", ("key=lambda i: scores[i])", "key=lambda i: -scores[i])"), "best images"),
    ("A6", "check_worst_images(worst_images)", ('scores.append(metric.compute()["mIoU"])',
                                                'scores.append(metric.compute()["aAcc"])'), "pixel accuracy"),
]


@pytest.mark.parametrize("aid,call,mutation,explanation", WRONG, ids=[f"{w[0]}-{w[3][:30]}" for w in WRONG])
def test_grader_explains_wrong_implementation(aid, call, mutation, explanation):
    result = run(call, namespace(aid, mutate=mutation if isinstance(mutation[0], tuple) else (mutation,)))
    assert not result.passed and result.score < result.max_score
    assert explanation in first_hint(result.report()), result.report()  # the first hint names the cause


def test_graders_refuse_the_library_itself():
    import setr_edu
    from setr_edu.engine.metrics import confusion_matrix

    for check, own in [(checks.check_patch_embedding, setr_edu.PatchEmbedding),
                       (checks.check_attention, setr_edu.MultiHeadSelfAttention),
                       (checks.check_transformer_block, setr_edu.TransformerBlock),
                       (checks.check_pos_embed_resize, setr_edu.resize_pos_embed),
                       (checks.check_confusion_matrix, confusion_matrix)]:
        r = check(own, verbose=False)
        assert r.score == 0 and "setr_edu's own" in r.report(), r.report()


def test_miou_grader_names_counted_ignore_pixels():
    """IoU from boolean masks, the most natural way to forget the ignore label."""
    def mean_iou(pairs, num_classes, ignore_index=255):
        ious = []
        for c in range(num_classes):
            inter = sum(int(((p == c) & (t == c)).sum()) for p, t in pairs)
            union = sum(int(((p == c) | (t == c)).sum()) for p, t in pairs)
            ious.append(inter / union if union else float("nan"))
        return float(torch.tensor(ious).nanmean())

    result = checks.check_miou(mean_iou, verbose=False)
    assert not result.passed and "(ignore) are counted" in result.report(), result.report()


class ColourOracle(torch.nn.Module):
    """A hand-written "model" that solves the synthetic task: saturated pixels are objects, and their class is the
    colour of the key block found in one of the corners. ``wrong_key=True`` reads the key wrong on purpose."""

    def __init__(self, dataset, wrong_key: bool = False):
        super().__init__()
        from setr_edu.data.synthetic import KEY_COLOURS

        self.anchor = torch.nn.Parameter(torch.zeros(1))  # graders take the device from the parameters
        self.keys = torch.tensor([KEY_COLOURS[k] for k in dataset.key_names], dtype=torch.float32)  # (keys, 3)
        self.k, self.wrong_key = max(4, round(dataset.key_size * dataset.img_size)), wrong_key

    def forward(self, x):
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        rgb = (x * std[:, None, None] + mean[:, None, None]) * 255  # undo the ImageNet normalisation
        k, S = self.k, x.shape[-1]
        corners = torch.stack([rgb[..., :k, :k], rgb[..., :k, S - k:], rgb[..., S - k:, :k], rgb[..., S - k:, S - k:]], 1)
        dist = (corners.mean((-2, -1))[:, :, None] - self.keys[None, None]).norm(dim=-1)  # (B, corners, keys)
        key = (dist.flatten(1).argmin(1) + self.wrong_key) % len(self.keys)  # (B,)
        label = torch.where((rgb.amax(1) - rgb.amin(1)) > 90, 1 + key[:, None, None], 0)  # saturated = object
        return torch.nn.functional.one_hot(label, 1 + len(self.keys)).permute(0, 3, 1, 2).float()


def test_trained_model_grader():
    """A model that solves the task passes; reading the key wrong, predicting only background, or logits at the
    wrong resolution fail, each with its own explanation."""
    import setr_edu
    from setr_edu.data import SyntheticContextDataset

    P = setr_edu.get_profile()
    ds = SyntheticContextDataset(1, img_size=P.img_size)
    r = checks.check_trained_model(ColourOracle(ds), verbose=False)
    assert r.passed and r.score == r.max_score, r.report()
    r = checks.check_trained_model(ColourOracle(ds, wrong_key=True), verbose=False)
    assert not r.passed and "below the target" in r.report() and "100.0% of object pixels" in r.report(), r.report()

    class Background(ColourOracle):  # predicts background everywhere
        def forward(self, x):
            return super().forward(x * 0 - 10)

    r = checks.check_trained_model(Background(ds), verbose=False)
    assert not r.passed and "no better than predicting background" in r.report(), r.report()

    class LowRes(ColourOracle):
        def forward(self, x):
            return torch.nn.functional.avg_pool2d(super().forward(x), 4)

    r = checks.check_trained_model(LowRes(ds), verbose=False)
    assert r.score == 0 and "input resolution" in r.report(), r.report()


# ------------------------------------------------------------------------------------------ student notebooks
def test_student_notebooks_are_up_to_date():
    assert msn.main(["--check"]) == 0, "run python book/_scripts/make_student_notebooks.py"
    assert {p.name for p in (BOOK / "student").glob("*.ipynb")} == set(NOTEBOOK.values())


def test_student_version_replaces_solutions():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n"
    out, n = msn.strip_regions(src, msn.BEGIN, msn.END, lambda ind: [f"{ind}# YOUR CODE HERE",
                                                                     f"{ind}raise NotImplementedError()"], "t")
    assert n == 1 and out == "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    with pytest.raises(msn.SolutionMarkerError, match="never closed"):
        msn.strip_regions("### BEGIN SOLUTION\nx = 1\n", msn.BEGIN, msn.END, lambda ind: [], "t")
    for name in NOTEBOOK.values():
        text = (BOOK / "student" / name).read_text()
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text and '"outputs": []' in text


def test_student_notebooks_stop_only_at_not_implemented(tmp_path):
    """All student notebooks in one kernel (``%reset -f`` between them): the only errors are NotImplementedError."""
    from nbclient import NotebookClient

    combined, spans = nbformat.v4.new_notebook(), {}
    for name in sorted(NOTEBOOK.values()):
        nb = nbformat.read(BOOK / "student" / name, as_version=4)
        start = len(combined.cells)
        combined.cells += [nbformat.v4.new_code_cell("%reset -f")] + [c for c in nb.cells if c.cell_type == "code"]
        spans[name] = (start, len(combined.cells))
    env = dict(os.environ, MPLBACKEND="agg")  # figures are drawn but not rendered to PNG: faster, same errors
    NotebookClient(combined, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)
    for name, (a, b) in spans.items():
        errors = [o.ename for c in combined.cells[a:b] for o in c.outputs if o.output_type == "error"]
        assert errors and set(errors) == {"NotImplementedError"}, (name, errors)
        printed = "".join(o.get("text", "") for c in combined.cells[a:b] for o in c.outputs)
        assert "not implemented yet" in printed and "PASSED" not in printed, name


# --------------------------------------------------------------------------------------------- grading command
def test_grade_command(tmp_path):
    """A solved, a stub, a buggy and an invalid-JSON submission: one CSV row per part, with the right scores;
    the buggy one's feedback is one readable line that names the bug."""
    subs = tmp_path / "submissions"
    (subs / "alice").mkdir(parents=True)
    (subs / "bob").mkdir()
    (subs / "erin").mkdir()
    (subs / "alice" / "a5_miou.ipynb").write_text((BOOK / "a5_miou.ipynb").read_text())
    buggy = nbformat.read(BOOK / "a5_miou.ipynb", as_version=4)  # absent classes averaged in as 0
    for c in buggy.cells:
        c.source = c.source.replace("float(torch.nanmean(iou_from_confusion(conf)))",
                                    "float(torch.nan_to_num(iou_from_confusion(conf)).mean())")
    nbformat.write(buggy, subs / "erin" / "a5_miou.ipynb")
    (subs / "bob" / "a5_miou.ipynb").write_text((BOOK / "student" / "a5_miou.ipynb").read_text())
    (subs / "carol_a2.ipynb").write_text('{"cells": [ this is not json')
    out = tmp_path / "scores.csv"
    assert grade.main([str(subs), "--out", str(out), "--profile", "ci", "--executed", str(tmp_path / "graded")]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == grade.COLUMNS
    by = {(r["student"], r["part"]): r for r in rows}
    assert [r["part"] for r in rows if r["student"] == "alice"] == ["confusion_matrix", "iou", "miou"]
    for part, points in [("confusion_matrix", 3), ("iou", 3), ("miou", 4)]:
        a, b = by["alice", part], by["bob", part]
        assert (float(a["score"]), a["passed"], a["status"]) == (points, "True", "graded"), a
        assert float(a["max_score"]) == points and a["notebook_status"] == "ok"
        assert (float(b["score"]), b["passed"], b["status"]) == (0, "False", "graded"), b
        assert "not implemented yet" in b["feedback"]
    erin = by["erin", "miou"]
    assert float(erin["score"]) < 4 and float(by["erin", "iou"]["score"]) == 3
    assert erin["feedback"].startswith("2 of 6 tests passed. First failure: mIoU ") and "\n" not in erin["feedback"]
    assert "Hint: classes that never appear (in targets or predictions) are averaged in as 0" in erin["feedback"]
    carol = [r for r in rows if r["student"] == "carol_a2"]
    assert [r["part"] for r in carol] == ["scaled_dot_product", "attention"]  # identified from the file name
    assert all(float(r["score"]) == 0 and r["notebook_status"].startswith("invalid notebook") for r in carol)
    executed = nbformat.read(tmp_path / "graded" / "bob" / "a5_miou.ipynb", as_version=4)
    assert sum(grade.GRADER_TAG in c.metadata.get("tags", []) for c in executed.cells) == 3


def test_grade_command_survives_a_notebook_that_never_ends(tmp_path):
    """The looping cell is stopped at the notebook's share of the budget; the parts it never defined score 0 with
    feedback that says the notebook stopped (not "did you rename it")."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("while True:\n    pass")])
    nb.metadata["setr_edu"] = {"assignment": "A5"}
    (tmp_path / "subs").mkdir()
    nbformat.write(nb, tmp_path / "subs" / "dave.ipynb")
    out = tmp_path / "scores.csv"
    assert grade.main([str(tmp_path / "subs"), "--out", str(out), "--timeout", "3", "--profile", "ci"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["part"] for r in rows] == ["confusion_matrix", "iou", "miou"]
    for r in rows:
        assert float(r["score"]) == 0 and r["status"] == "graded" and r["notebook_status"].startswith("timeout")
        assert "not defined yet when the notebook stopped (timeout: cell 0" in r["feedback"], r
        assert "rename" not in r["feedback"]


def test_grade_identification():
    assert grade.identify(Path("x/A3-bob.ipynb")) == "A3"
    assert grade.identify(Path("x/bob.ipynb"), text="checks.check_miou(mean_iou)") == "A5"
    assert grade.identify(Path("x/bob.ipynb")) is None


# ------------------------------------------------------------------------------------------------------ nbgrader
def test_nbgrader_export_has_valid_cell_metadata(tmp_path):
    """The export's cell metadata follows nbgrader's schema version 3 (the rules of nbgrader's MetadataValidatorV3:
    grade ids unique and non-empty, points on grade cells, markdown answers both solution and grade), check cells
    carry their part's points and end with ``result.score`` (nbgrader's partial credit), no instructor cell leaks."""
    written = msn.export_nbgrader(tmp_path)
    assert len(written) == len(ASSIGNMENTS)
    keys = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}
    for path in written:
        nb = nbformat.read(path, as_version=4)
        aid = nb.metadata["setr_edu"]["assignment"]
        metas = [(c, c.metadata["nbgrader"]) for c in nb.cells if "nbgrader" in c.metadata]
        ids = [m["grade_id"] for _, m in metas]
        assert len(ids) == len(set(ids)) and all(ids)
        for cell, m in metas:
            assert keys <= set(m) and m["schema_version"] == 3 and not m["task"]
            assert all(isinstance(m[k], bool) for k in ("grade", "solution", "locked", "task"))
            if m["grade"]:
                assert isinstance(m["points"], float)
            if cell.cell_type == "markdown":
                assert m["grade"] and m["solution"] and "### BEGIN SOLUTION" in cell.source
        tests = [(c, m) for c, m in metas if m["grade"] and c.cell_type == "code"]
        assert sum(m["points"] for _, m in tests) == ASSIGNMENTS[aid].points
        assert all(c.source.rstrip().splitlines()[-1].startswith("result.score") and m["locked"] for c, m in tests)
        assert not any("instructor" in c.metadata.get("tags", []) for c in nb.cells)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    config = (tmp_path / "nbgrader_config.py").read_text()  # nbgrader's default 30 s per cell interrupts A6
    assert "c.Execute.timeout = 1800" in config and "import setr_edu" in config
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    msn.export_nbgrader(tmp_path)  # an instructor's own configuration is never overwritten
    assert (tmp_path / "nbgrader_config.py").read_text() == "c = get_config()\n"


def test_nbgrader_generate_assignment_and_autograde(tmp_path):
    """nbgrader's own validator, generate and autograde steps on the export, end to end (skipped where nbgrader is
    not installed; it installs with ``pip install nbgrader``): a solved A5 gets 10 points, the released stub 0."""
    pytest.importorskip("nbgrader", reason="nbgrader is not installed: the schema is checked by the test above")
    import subprocess

    from nbgrader.nbgraderformat import MetadataValidator

    written = msn.export_nbgrader(tmp_path)
    for path in written:
        MetadataValidator().validate_nb(nbformat.read(path, as_version=4))

    def nbgrader(*args):
        done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=tmp_path, capture_output=True,
                              text=True, env=dict(os.environ, PYTHONPATH=str(ROOT), PATH=os.pathsep.join(
                                  [str(Path(sys.executable).parent), os.environ["PATH"]])))  # its alembic
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    nbgrader("generate_assignment", "a5_miou", "--force")
    released = (tmp_path / "release" / "a5_miou" / "a5_miou.ipynb").read_text()
    assert "YOUR CODE HERE" in released and "BEGIN SOLUTION" not in released and "torch.nanmean" not in released
    for student, source in [("alice", tmp_path / "source" / "a5_miou" / "a5_miou.ipynb"),  # solved
                            ("bob", tmp_path / "release" / "a5_miou" / "a5_miou.ipynb")]:  # handed out
        (tmp_path / "submitted" / student / "a5_miou").mkdir(parents=True)
        (tmp_path / "submitted" / student / "a5_miou" / "a5_miou.ipynb").write_text(source.read_text())
    nbgrader("autograde", "a5_miou", "--create", "--force")
    nbgrader("export", "--to", str(tmp_path / "grades.csv"))
    scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader((tmp_path / "grades.csv").open())}
    assert scores == {"alice": 10.0, "bob": 0.0}, scores
