"""The named recipes: the paper's runs, their Colab-sized cuts, the -DeiT rows and the synthetic task.

Each is a function returning a :class:`setr_edu.recipes.Recipe`; :data:`NAMED_RECIPES` maps every name that
``get_recipe`` and ``python -m setr_edu recipes`` know to one of them. Import them from ``setr_edu.recipes``
(which re-exports everything here):

    >>> from setr_edu.recipes import paper_recipe
    >>> r = paper_recipe("cityscapes", "pup", iters=40_000)
    >>> r.name, r.crop_size, r.batch_size, r.lr, r.slide_stride
    ('cityscapes_pup_40k', 768, 8, 0.01, 512)

The paper's recipes (paper §4 "Implementation details") follow the **official configs** (``configs/SETR/*.py``
of github.com/fudan-zvg/SETR) where they differ from the paper's text; each such recipe says so in ``notes``.
"""
from __future__ import annotations

import typing
from dataclasses import replace

from .profile import PROFILES, Profile
from .recipe_schema import Recipe


# --- the synthetic context task ---------------------------------------------------------------------------------
def synthetic_recipe(profile: Profile | str, name: str | None = None, **kw) -> Recipe:
    """A recipe for the synthetic context task at a run profile's scale (``setr_edu.profile``)."""
    P = PROFILES[profile] if isinstance(profile, str) else profile
    base = dict(name=name or f"synthetic_{P.name}", dataset="synthetic", crop_size=P.img_size, num_train=P.num_train,
                num_val=P.num_val, encoder=P.encoder, encoder_overrides=dict(P.encoder_overrides), decoder="naive",
                decoder_channels=P.decoder_channels, batch_size=P.batch_size, max_iters=P.train_iters,
                eval_every=P.eval_every, checkpoint_every=P.train_iters, checkpoint_minutes=2.0, log_every=10,
                optimizer="adamw", lr=1e-3, head_lr_mult=1.0, weight_decay=0.01, min_lr=0.0,
                warmup_iters=max(1, P.train_iters // 10), warmup_ratio=0.04,
                notes="the synthetic context task (setr_edu.data.SyntheticContextDataset) from scratch. Unlike the "
                      "paper (SGD, heads x10: fine-tuning a pretrained ViT), every layer starts random, so it uses "
                      "AdamW at one learning rate with a 10% warm-up; SGD leaves the ViT stuck at the local solution")
    base.update(kw)
    return Recipe(**base).validate()


# --- the paper's runs (paper §4; fudan-zvg/SETR configs) -------------------------------------------------------
# (num_classes, crop, slide stride, train/test scale, batch, eval interval) per dataset: paper §4 and
# fudan-zvg/SETR configs/_base_/datasets/*.py (img_scale, crop_size) + configs/SETR/*.py (test_cfg slide stride).
_DATA = dict(
    ade20k=dict(num_classes=150, crop_size=512, slide_stride=341, train_scale=(2048, 512), test_scale=(2048, 512),
                batch_size=16, eval_every=16_000),
    cityscapes=dict(num_classes=19, crop_size=768, slide_stride=512, train_scale=(2049, 1025),
                    test_scale=(2049, 1025), batch_size=8, eval_every=4_000),
    pascal_context=dict(num_classes=60, crop_size=480, slide_stride=320, train_scale=(520, 520),
                        test_scale=(520, 520), batch_size=16, eval_every=8_000),
)
_PAPER_LR = dict(ade20k=0.001, cityscapes=0.01, pascal_context=0.001)


def _official_lr(dataset: str, decoder: str) -> tuple[float, str]:
    """Base LR of the official configs (``optimizer.lr`` in fudan-zvg/SETR ``configs/SETR/*.py``) and a note
    when it differs from the paper's text."""
    if dataset == "cityscapes" and decoder == "mla":
        return 0.002, "official config lr 0.002 for Cityscapes MLA; the paper's text says 0.01"
    if dataset == "ade20k" and decoder == "naive":
        return 0.01, "official config lr 0.01 for ADE20K Naive; the paper's text says 0.001"
    if dataset == "pascal_context" and decoder == "naive":
        return 0.01, ("official config lr 0.01 for Pascal Context Naive (the paper's text says 0.001); its config "
                      "does not set samples_per_gpu, so the dataset default of 4 per GPU applies: the name's batch "
                      "of 16 implies 4 GPUs x 4 (not stated in the repository; unverified)")
    return _PAPER_LR[dataset], "official config and paper agree"


def official_ms_ratios(recipe: Recipe) -> tuple[float, ...]:
    """``img_ratios`` of the official ``*_MS.py`` test config for this recipe (fudan-zvg/SETR configs/SETR): the
    ADE20K Naive, MLA and MLA-DeiT configs list (0.5, 0.75, 1.0), every other one the paper's six ratios."""
    if recipe.dataset == "ade20k" and recipe.decoder in ("naive", "mla"):
        return (0.5, 0.75, 1.0)
    return (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def paper_recipe(dataset: str, decoder: str, encoder: str = "large", iters: int | None = None,
                 batch_size: int | None = None) -> Recipe:
    """The paper's recipe for ``dataset`` x ``decoder`` x ``encoder`` (paper §4, official configs).

    ``encoder="deit"``: the -DeiT rows (Tables 2, 4, 5): T-Base shape started from DeiT-B distilled ImageNet-1k
    weights, with the DeiT configs' taps (those of ``DecoderConfig.for_encoder`` at depth 12)."""
    if encoder == "deit":
        r = paper_recipe(dataset, decoder, "base", iters, batch_size)
        return replace(r, name=r.name.replace("_base", "_deit"), pretrained="deit",
                       notes=r.notes + "; DeiT-B distilled ImageNet-1k weights (distillation token dropped)").validate()
    d = dict(_DATA[dataset])
    lr, note = _official_lr(dataset, decoder)
    iters = iters or dict(ade20k=160_000, cityscapes=80_000, pascal_context=80_000)[dataset]
    d["batch_size"] = batch_size or d["batch_size"]
    d["eval_every"] = min(d["eval_every"] * (2 if dataset == "cityscapes" and iters == 80_000 else 1), iters)
    name = f"{dataset}_{decoder}" + ("_base" if encoder == "base" else "")
    name += f"_{iters // 1000}k" if dataset == "cityscapes" else ""
    name += "_bs8" if batch_size == 8 and dataset != "cityscapes" else ""
    return Recipe(name=name, notes=note, dataset=dataset, decoder=decoder, encoder=encoder, pretrained="paper",
                  lr=lr, max_iters=iters, eval_mode="slide", amp="auto", data_root=f"data/{dataset}", **d).validate()


# --- Colab-sized cuts of the paper's runs -----------------------------------------------------------------------
# Colab-sized runs of the paper's models: (global batch, accumulation steps, iterations, eval interval) and the
# expected time from setr_edu.perf.plan.expected_time (mfu 0.25 assumed; tests/test_perf.py keeps them in step).
_COLAB = dict(ade20k=(8, 2, 12_000, 2_000), cityscapes=(8, 4, 4_000, 750))
_COLAB_HOURS = {("ade20k", "pup"): (5.8, 1.0, 1.2), ("ade20k", "naive"): (5.1, 0.8, 1.1),
                ("cityscapes", "pup"): (5.5, 1.0, 1.2)}  # (T4 total, T4 to first val, A100 total)


def colab_recipe(dataset: str, decoder: str) -> Recipe:
    """The paper's T-Large SETR with its pretrained ViT, cut to finish in one Colab session on a 16 GB GPU."""
    batch, accum, iters, every = _COLAB[dataset]
    t4, first, a100 = _COLAB_HOURS[(dataset, decoder)]
    base = paper_recipe(dataset, decoder, iters=80_000 if dataset == "cityscapes" else None)
    notes = (f"Colab-sized {base.name}: global batch {batch} = {accum} steps x {batch // accum} images (paper: "
             f"{base.batch_size}, same lr {base.lr:g}), {iters} iterations instead of {base.max_iters}, activation "
             f"checkpointing, amp=auto (fp16 + GradScaler on a T4, bf16 on an L4/A100), checkpoints every 10 min. "
             f"Expected from FLOPs at an assumed 25% MFU (unverified): {t4} h on a T4 (first validation after "
             f"{first} h), {a100} h on an A100. Data: assumes >= 10 samples/s from 2 DataLoader workers on Colab's 2 "
             f"cores (unverified), enough for a T4. Fewer images than the paper: expect a lower mIoU")
    return replace(base, name=f"{dataset}_{decoder}_colab", notes=notes, batch_size=batch, grad_accum_steps=accum,
                   max_iters=iters, eval_every=every, grad_checkpointing=True, checkpoint_every=500,
                   checkpoint_minutes=10.0, num_workers=2).validate()


# --- every named recipe ----------------------------------------------------------------------------------------
def _named() -> dict[str, typing.Callable[[], Recipe]]:
    """name -> a function that builds that recipe (each is built only when asked for)."""
    table = {
        "synthetic_cpu": lambda: synthetic_recipe("cpu"),
        "synthetic_cpu_cnn": lambda: synthetic_recipe("cpu", name="synthetic_cpu_cnn", model="cnn"),
        "synthetic_ci": lambda: synthetic_recipe("ci", max_iters=20, eval_every=10, checkpoint_every=10),
        "synthetic_ci_cnn": lambda: synthetic_recipe("ci", name="synthetic_ci_cnn", model="cnn", max_iters=20,
                                                     eval_every=10, checkpoint_every=10, cnn_width=32),
    }
    for enc in ("large", "base"):
        for dec in ("naive", "pup", "mla"):
            suffix = "_base" if enc == "base" else ""
            table[f"ade20k_{dec}{suffix}"] = (lambda d=dec, e=enc: paper_recipe("ade20k", d, e))
            table[f"pascal_context_{dec}{suffix}"] = (lambda d=dec, e=enc: paper_recipe("pascal_context", d, e))
            for it in (40_000, 80_000):
                table[f"cityscapes_{dec}{suffix}_{it // 1000}k"] = (
                    lambda d=dec, e=enc, i=it: paper_recipe("cityscapes", d, e, iters=i))
    for dec in ("pup", "mla"):  # the paper's -DeiT rows: Tables 4 and 5 (PUP, MLA), Table 2 (all three)
        table[f"ade20k_{dec}_deit"] = lambda d=dec: paper_recipe("ade20k", d, "deit")
        table[f"pascal_context_{dec}_deit"] = lambda d=dec: paper_recipe("pascal_context", d, "deit")
    for dec in ("naive", "pup", "mla"):
        for it in (40_000, 80_000):
            table[f"cityscapes_{dec}_deit_{it // 1000}k"] = (
                lambda d=dec, i=it: paper_recipe("cityscapes", d, "deit", iters=i))
    table["ade20k_mla_bs8"] = lambda: paper_recipe("ade20k", "mla", batch_size=8)
    table["pascal_context_mla_bs8"] = lambda: paper_recipe("pascal_context", "mla", batch_size=8)
    for dataset, dec in _COLAB_HOURS:
        table[f"{dataset}_{dec}_colab"] = lambda d=dataset, e=dec: colab_recipe(d, e)
    return table


NAMED_RECIPES = _named()
