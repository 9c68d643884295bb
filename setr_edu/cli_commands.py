"""What ``python -m setr_edu train|eval|predict|recipes|released|data`` do, once :mod:`setr_edu.cli` has parsed
the arguments (``args``, an ``argparse.Namespace``). Each ``cmd_*`` returns the exit status; a mistake raises
(``ValueError``, ``FileNotFoundError``, ...) and :func:`setr_edu.cli.main` turns it into one line and status 2.

::

    train    a recipe -> engine.trainer.Trainer.fit (resumable; prints the command that resumes on Ctrl-C)
    eval     a checkpoint (or a released SETR model) -> mIoU on the validation set (engine.inference.evaluate)
    predict  a checkpoint + image files -> colourised PNGs (engine.inference.predict)

Test-time views: ``--ms`` is the paper's multi-scale + flip test (ratios 0.5-1.75, Zheng et al. 2021 §4);
``--protocol`` (or the recipe's ``eval_protocol``) names one, see :func:`setr_edu.engine.inference.protocol_views`.
Imports stay inside the functions, so ``recipes`` and ``--help`` do not load what they do not use.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


# --- train --------------------------------------------------------------------------------------------------------
def _load_recipe(args, extra: list[str]):
    """The recipe ``--config`` names, with ``extra``, the key=value overrides, ``--data-root`` and ``--device``."""
    from .recipes import get_recipe

    overrides = list(extra) + list(args.overrides or [])
    if getattr(args, "data_root", None):
        overrides.append(f"data_root={args.data_root}")
    if getattr(args, "device", None):
        overrides.append(f"device={args.device}")
    return get_recipe(args.config, overrides)


def cmd_train(args) -> int:
    from .engine.distributed import cleanup
    from .engine.trainer import Trainer

    recipe = _load_recipe(args, [f"max_iters={args.max_iters}"] if args.max_iters is not None else [])
    try:
        trainer = Trainer(recipe, args.work_dir, resume=args.resume, overwrite=args.overwrite,
                          progress=not args.no_progress)
        trainer.resume_hint = _resume_command(args, trainer.env.world_size)
        summary = trainer.fit()
        if trainer.env.is_main:
            print(json.dumps(summary))
    finally:
        cleanup()
    return 0


def _resume_command(args, world_size: int = 1) -> str:
    """The command that continues this run: the same arguments, without --overwrite, with --resume."""
    import shlex

    tokens = [a for a in args.argv if a != "--overwrite"] + ([] if "--resume" in args.argv else ["--resume"])
    prefix = f"torchrun --nproc_per_node={world_size} -m setr_edu" if world_size > 1 else "python -m setr_edu"
    return f"{prefix} {shlex.join(tokens)}"


# --- a model to run: a checkpoint of ours, or a released one --------------------------------------------------------
def _model_from_checkpoint(args):
    """(model on device, recipe, meta, device, num_classes) from ``--checkpoint`` (+ ``--config`` / overrides).

    The recipe is ``--config`` when given, else the one saved in the checkpoint (or the paper's recipe for a
    released model) with eval's key=value overrides and ``--data-root`` on top."""
    from .engine.build import build_model
    from .engine.checkpoint import check_compatible, load_checkpoint, nonfinite_weights
    from .recipes import Recipe

    if args.checkpoint.split(":", 1)[0] in ("official", "mmseg"):
        return _released_model(args)
    state = load_checkpoint(args.checkpoint)
    recipe = _checkpoint_recipe(args, lambda: Recipe.from_dict(state["recipe"]))
    meta = state.get("meta", {})
    device = _device(args, recipe)
    num_classes = recipe.num_classes or meta.get("num_classes")
    model = build_model(recipe, num_classes)
    check_compatible(state, model, recipe.to_dict(), args.checkpoint)
    model.load_state_dict(state["model"])
    bad = nonfinite_weights(state["model"])
    if bad:  # a run that diverged: its predictions are noise, say so before the long evaluation
        print(f"warning: {len(bad)} weight tensor(s) of {args.checkpoint} hold NaN or inf (e.g. {bad[0]}): the "
              f"training diverged and predictions from it are meaningless; use an earlier checkpoint, or resume one "
              f"with a lower lr= (or amp=bf16 / amp=none instead of fp16)", file=sys.stderr)
    meta = dict(meta, iter=state.get("iter"))
    return model.to(device).eval(), recipe, meta, device, num_classes


def _released_model(args):
    """``--checkpoint official:<name>`` / ``mmseg:<name>``: download, convert, and the paper's recipe for it."""
    from .released import load_released, released_recipe

    model, entry = load_released(args.checkpoint)
    print(model.conversion_report)
    recipe = _checkpoint_recipe(args, lambda: released_recipe(entry))
    device = _device(args, recipe)
    expected = ", ".join(f"{k} {v}" for k, v in (("SS", entry.ss), ("MS", entry.ms), ("paper SS", entry.paper_ss),
                                                 ("paper MS", entry.paper_ms)) if v is not None)
    meta = dict(iter=f"released ({entry.key}; expected mIoU: {expected})")
    return model.to(device).eval(), recipe, meta, device, model.num_classes


def _checkpoint_recipe(args, saved):
    """``--config`` (with its overrides) if given, else ``saved()`` with the key=value overrides and ``--data-root``
    (eval has them; predict has neither)."""
    from .recipes import apply_overrides

    if getattr(args, "config", None):
        return _load_recipe(args, [])
    overrides = list(getattr(args, "overrides", None) or [])
    if getattr(args, "data_root", None):
        overrides.append(f"data_root={args.data_root}")
    return apply_overrides(saved(), overrides)


def _device(args, recipe):
    """``--device`` (else the recipe's), refused now, before any work, if this machine does not have it."""
    from .engine.distributed import resolve_device

    return resolve_device(getattr(args, "device", None) or recipe.device)


def _scales(args) -> tuple[tuple[float, ...], bool]:
    """(scales, flip) from ``--ms`` / ``--scales`` / ``--flip``; a bad ``--scales`` is refused before any work."""
    from .engine.inference import protocol_views

    if args.ms:
        return protocol_views("paper")
    try:
        scales = tuple(float(s) for s in args.scales.split(",")) if args.scales else (1.0,)
    except ValueError:
        scales = ()
    if not scales or not all(0 < s < float("inf") for s in scales):
        raise ValueError(f"--scales {args.scales} is not valid: give positive numbers separated by commas, e.g. "
                         f"--scales 0.5,1.0,1.5 (1.0 is the image's own size)")
    return scales, args.flip


def _protocol(args, recipe, scales, flip) -> tuple[tuple[float, ...], bool]:
    """``--protocol`` (or the recipe's ``eval_protocol`` when no scale option is given) -> (scales, flip)."""
    from .engine.inference import protocol_views
    from .recipes import official_ms_ratios

    protocol = args.protocol or (recipe.eval_protocol if not (args.ms or args.scales or args.flip) else None)
    return protocol_views(protocol, official_ms_ratios(recipe)) if protocol else (scales, flip)


# --- eval ---------------------------------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    from .data.loader import resolve_num_workers
    from .engine.build import build_datasets
    from .engine.inference import convention, evaluate

    scales, flip = _scales(args)
    model, recipe, meta, device, num_classes = _model_from_checkpoint(args)
    scales, flip = _protocol(args, recipe, scales, flip)
    (val_set,) = build_datasets(recipe, splits=("val",))
    if hasattr(val_set, "validate"):  # every file readable and consistent, before the long evaluation
        val_set.validate()
    mode = args.mode or recipe.eval_mode
    batch = args.batch_size or (recipe.batch_size if recipe.dataset == "synthetic" else 1)
    rules = convention(recipe.eval_convention, recipe.crop_size, scales)
    print(f"evaluating {args.checkpoint} (recipe {recipe.name}, iteration {meta.get('iter', '?')}) on {len(val_set)} "
          f"images: mode={mode}, scales={list(scales)}, flip={flip}, {recipe.eval_convention} convention "
          f"(short side >= {rules['min_size'] or 'any'}, windows larger than the image: {rules['small']})")
    res = evaluate(model, val_set, num_classes, mode, recipe.crop_size, recipe.stride, scales, flip, batch_size=batch,
                   device=device, progress=True, **rules, class_names=meta.get("class_names"),
                   num_workers=resolve_num_workers(recipe.num_workers, recipe.dataset))
    print(res["report"])
    summary = {k: float(res[k]) for k in ("mIoU", "mAcc", "aAcc")}
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({**summary, "IoU": [float(v) for v in res["IoU"]]}, indent=1))
    return 0


# --- predict ------------------------------------------------------------------------------------------------------
def cmd_predict(args) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from .data.datasets import BadFileError, read_image
    from .data.transforms import to_tensor
    from .data.palettes import colorize
    from .engine.inference import convention, predict, too_big_for_whole

    scales, flip = _scales(args)
    paths = _image_paths(args.images)
    model, recipe, meta, device, num_classes = _model_from_checkpoint(args)
    scales, flip = _protocol(args, recipe, scales, flip)
    palette = np.asarray(meta.get("palette") or _default_palette(num_classes), dtype=np.uint8)
    mode = args.mode or recipe.eval_mode
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skipped = []
    for path, stem in zip(paths, _output_stems(paths)):
        try:
            rgb = read_image(path)  # (H, W, 3) uint8
        except BadFileError as e:  # report it and go on with the others
            skipped.append(path)
            print(f"skipped: {e}", file=sys.stderr)
            continue
        image, _ = to_tensor(rgb, np.zeros(rgb.shape[:2], dtype=np.uint8))  # (3, H, W) float, normalised
        this_mode = mode
        if mode == "whole" and too_big_for_whole(*rgb.shape[:2], recipe.crop_size):
            this_mode = "whole" if args.mode == "whole" else "slide"
            print(f"note: {path} is {rgb.shape[1]}x{rgb.shape[0]}, far larger than the {recipe.crop_size}px crop the "
                  f"model was trained at: " + ("whole mode, as asked (one attention over every patch: slow and "
                  "memory-hungry; --mode slide is faster)" if this_mode == "whole" else
                  f"using --mode slide ({recipe.crop_size}px windows); pass --mode whole to insist"), file=sys.stderr)
        with torch.no_grad():
            probs = predict(model, image[None].to(device), this_mode, recipe.crop_size, recipe.stride, scales, flip,
                            **convention(recipe.eval_convention, recipe.crop_size, scales))  # (1, K, H, W)
        colours = colorize(probs[0].argmax(0), palette)  # (H, W, 3) uint8
        Image.fromarray(colours).save(out / f"{stem}_pred.png")
        if args.overlay:
            blend = (1 - args.overlay) * rgb + args.overlay * colours
            Image.fromarray(blend.round().astype(np.uint8)).save(out / f"{stem}_overlay.png")
        print(f"{path} -> {out / f'{stem}_pred.png'}")
    if skipped:
        print(f"error: {len(skipped)} of {len(paths)} images could not be read and were skipped (see above); the "
              f"other {len(paths) - len(skipped)} predictions are in {out}", file=sys.stderr)
        return 1
    return 0


def _image_paths(items: list[str]) -> list[Path]:
    """The files to predict: each argument is an image file or a folder (its image files, sorted)."""
    from .data.datasets import IMAGE_SUFFIXES

    paths, missing = [], []
    for item in map(Path, items):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"folder {item} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            missing.append(str(item))
    if missing:
        raise FileNotFoundError(f"no such image file or folder: {', '.join(missing)}; nothing was predicted")
    return paths


def _output_stems(paths: list[Path]) -> list[str]:
    """Output names that never overwrite each other: the file's stem, or for inputs that share a stem (a.jpg and
    a.png, or dir1/a.png and dir2/a.png) the stem plus the suffix and, if needed, a number."""
    shared = {s for s in (p.stem for p in paths) if [q.stem for q in paths].count(s) > 1}
    used, out = set(), []
    for p in paths:
        base = f"{p.stem}_{p.suffix.lstrip('.').lower()}" if p.stem in shared else p.stem
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        out.append(name)
    return out


def _default_palette(k: int):
    from .data.palettes import generic_palette

    return generic_palette(k)


# --- recipes, released, data ----------------------------------------------------------------------------------------
def cmd_recipes(args) -> int:
    from .recipes import NAMED_RECIPES, get_recipe, list_recipes

    if not args.name:
        for name in list_recipes():
            r = NAMED_RECIPES[name]()
            model = "cnn" if r.model == "cnn" else f"{r.decoder}/{r.encoder}"
            print(f"{name:28s} {r.dataset:15s} {model:12s} crop {r.crop_size:4d} batch {r.batch_size:3d} "
                  f"iters {r.max_iters:7d} {r.optimizer} lr {r.lr:g}")
        return 0
    for key, value in get_recipe(args.name, args.overrides).to_dict().items():
        print(f"{key} = {value!r}")
    return 0


def cmd_released(args) -> int:
    from .released import table

    print(table())
    return 0


def cmd_data(args) -> int:
    from .data.prepare import command

    return command(args)
