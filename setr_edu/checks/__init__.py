"""Graders for the course assignments (book/assignments/): call them from a notebook, e.g.
``check_attention(MyAttention)``.

Each check runs the student's code on small seeded inputs against setr_edu's own implementation, with the same
weights copied in, prints a report in plain words that names the likely bug, and returns a :class:`CheckResult`
(``passed``, ``score``, ``messages``). ``python -m setr_edu grade`` runs the same checks over a folder of
submissions (:mod:`setr_edu.checks.grade`). Assignments and points: :mod:`setr_edu.checks.assignments`.
"""
from .assignments import ASSIGNMENTS, Assignment, Part
from .attention import check_attention, check_scaled_dot_product
from .capstone import check_trained_model, check_worst_images
from .decoders import check_decoder
from .miou import check_confusion_matrix, check_iou, check_miou
from .patch_embedding import check_patch_embedding, check_patchify
from .result import CheckResult, run_official
from .transformer import check_pos_embed_resize, check_transformer_block

__all__ = [
    "ASSIGNMENTS", "Assignment", "Part", "CheckResult", "run_official",
    "check_patchify", "check_patch_embedding",
    "check_scaled_dot_product", "check_attention",
    "check_transformer_block", "check_pos_embed_resize",
    "check_decoder",
    "check_confusion_matrix", "check_iou", "check_miou",
    "check_trained_model", "check_worst_images",
]
