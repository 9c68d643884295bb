"""The course's assignments, their graded parts and points: the one list the graders and ``grade`` read.

Each part names the call the grading command runs after a student's notebook (``call``, evaluated with
``setr_edu.checks`` as the namespace of the check function and the notebook's own variables as arguments), so a
student who deleted or edited a check cell is still graded the same way as everybody else.

To add an assignment: write its instructor notebook in ``book/assignments/`` (see the guide there), its graders
in ``setr_edu/checks/``, and one entry here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    name: str  # column name in the scores CSV, and the ``part`` of each CheckResult
    points: float
    call: str  # what the grading command evaluates, e.g. "check_attention(MyAttention)"


@dataclass(frozen=True)
class Assignment:
    id: str  # "A1" ...
    title: str
    notebook: str  # file name in book/assignments/ (and book/assignments/student/)
    parts: tuple[Part, ...]

    @property
    def points(self) -> float:
        return sum(p.points for p in self.parts)

    def part(self, name: str) -> Part:
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(f"assignment {self.id} has no part {name!r}; parts: {[p.name for p in self.parts]}")


ASSIGNMENTS: dict[str, Assignment] = {a.id: a for a in [
    Assignment("A1", "Patch embedding", "a1_patch_embedding.ipynb", (
        Part("patchify", 4, "check_patchify(patchify)"),
        Part("patch_embedding", 6, "check_patch_embedding(MyPatchEmbedding)"),
    )),
    Assignment("A2", "Multi-head self-attention", "a2_attention.ipynb", (
        Part("scaled_dot_product", 4, "check_scaled_dot_product(scaled_dot_product)"),
        Part("attention", 6, "check_attention(MyAttention)"),
    )),
    Assignment("A3", "A transformer block and its position embedding", "a3_transformer_block.ipynb", (
        Part("transformer_block", 6, "check_transformer_block(MyBlock)"),
        Part("pos_embed_resize", 4, "check_pos_embed_resize(resize_pos_embed)"),
    )),
    Assignment("A4", "A SETR decoder", "a4_decoder.ipynb", (
        Part("decoder", 10, "check_decoder(MyHead, kind=KIND)"),
    )),
    Assignment("A5", "mIoU from a confusion matrix", "a5_miou.ipynb", (
        Part("confusion_matrix", 3, "check_confusion_matrix(confusion_matrix)"),
        Part("iou", 3, "check_iou(iou_from_confusion)"),
        Part("miou", 4, "check_miou(mean_iou)"),
    )),
    Assignment("A6", "Capstone: train a small SETR", "a6_capstone.ipynb", (
        Part("trained_model", 6, "check_trained_model(model)"),
        Part("worst_images", 4, "check_worst_images(worst_images)"),
    )),
]}


def points(assignment: str, part: str) -> float:
    return ASSIGNMENTS[assignment].part(part).points
