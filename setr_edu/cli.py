"""Command line: ``python -m setr_edu train|eval|predict|recipes|bench|grade``.

    python -m setr_edu train --config synthetic_cpu                   # a few minutes on a laptop CPU
    python -m setr_edu train --config ade20k_pup --data-root data/ade20k grad_accum_steps=8 amp=bf16
    torchrun --nproc_per_node=8 -m setr_edu train --config cityscapes_pup_80k --data-root data/cityscapes
    python -m setr_edu eval --checkpoint runs/synthetic_cpu/last.pt [--ms]
    python -m setr_edu predict --checkpoint runs/synthetic_cpu/last.pt photo.jpg --out preds/

Mistakes (an unknown recipe key, a missing dataset folder, a checkpoint from another model) end with one line
that says what to do, and exit status 2; ``SETR_EDU_DEBUG=1`` shows the full traceback instead. Ctrl-C or SIGTERM
during training saves a checkpoint and ends with the command that resumes (exit status 130 or 143); ``predict``
reports unreadable images, writes the others and exits with status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

PAPER_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
USER_ERRORS = (KeyError, TypeError, ValueError, FileNotFoundError, FileExistsError)  # + CheckpointError

OVERRIDES_HELP = ("recipe overrides key=value, e.g. lr=0.01 max_iters=2k amp=bf16 encoder_overrides.depth=6; "
                  "`python -m setr_edu recipes NAME` lists every key with its value")


def _recipe_args(p: argparse.ArgumentParser, config_required: bool) -> None:
    p.add_argument("--config", "-c", required=config_required, metavar="NAME_OR_FILE",
                   help="a named recipe (`python -m setr_edu recipes` lists them: synthetic_cpu, ade20k_pup, "
                        "cityscapes_mla_80k, ...) or a .json/.yaml/.py recipe file")
    p.add_argument("--data-root", metavar="DIR", help="dataset folder (same as data_root=DIR)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="same as device=...; default: the recipe's")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for PyTorch (torch.set_num_threads)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)


def _inference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint written by train (<work_dir>/last.pt), "
                   "or a released SETR model: official:<name> or mmseg:<name> (downloaded once, converted; "
                   "`python -m setr_edu released` lists them)")
    p.add_argument("--mode", choices=("whole", "slide"), help="whole image or sliding window (default: the recipe's "
                   "eval_mode; the paper's recipes use slide with crop/stride 512/341, 768/512, 480/320)")
    p.add_argument("--scales", metavar="S,S,...", help="test scales, e.g. 0.5,0.75,1.0,1.25,1.5,1.75 (default 1.0)")
    p.add_argument("--flip", action="store_true", help="also average the horizontally flipped image")
    p.add_argument("--ms", action="store_true", help="the paper's multi-scale + flip test: scales 0.5-1.75 and --flip")
    p.add_argument("--protocol", choices=("single", "paper", "official"), help="a named test protocol (default: the "
                   "recipe's eval_protocol): single scale; paper = ratios 0.5-1.75 + flip; official = the ratios of "
                   "the official *_MS.py config + flip (0.5, 0.75, 1.0 for ADE20K Naive/MLA)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m setr_edu", description="SETR from scratch: train, evaluate and "
                                     "run segmentation models (the setr-edu book's library).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a recipe (resumable, multi-GPU with torchrun)",
                       description="Train SETR (or the CNN baseline) with a named recipe or a recipe file. Writes "
                       "<work-dir>/last.pt (every checkpoint_every iterations or checkpoint_minutes, before each "
                       "validation, at the end, and on Ctrl-C / SIGTERM, which then print the command that resumes) "
                       "and <work-dir>/log.jsonl (one JSON object per log step; validation lines carry val_mIoU). "
                       "Overrides key=value may come anywhere after the command. Multi-GPU: "
                       "torchrun --nproc_per_node=N -m setr_edu train ... (batch_size stays the global batch).")
    _recipe_args(p, config_required=True)
    p.add_argument("--max-iters", type=int, metavar="N", help="stop after N iterations (same as max_iters=N)")
    p.add_argument("--work-dir", metavar="DIR", help="output folder (default runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue from <work-dir>/last.pt exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="start from scratch even if <work-dir> has a checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")

    p = sub.add_parser("eval", help="evaluate a checkpoint on its validation set (mIoU, per-class IoU)",
                       description="Evaluate a trained checkpoint: prints the per-class IoU/Acc table and mIoU/mAcc/aAcc "
                       "(mmsegmentation semantics). The recipe (and model) come from the checkpoint unless --config "
                       "is given; key=value overrides apply on top (e.g. data_root=..., num_val=...).")
    _inference_args(p)
    _recipe_args(p, config_required=False)
    p.add_argument("--batch-size", type=int, default=0, metavar="N", help="images per forward pass (default: the "
                   "recipe's batch for the synthetic task, 1 for real datasets whose images differ in size)")
    p.add_argument("--json", metavar="FILE", help="also write the metrics to FILE as JSON")

    p = sub.add_parser("predict", help="segment image files and save colourised PNGs",
                       description="Run a checkpoint on image files (any size; RGB) and write <out>/<name>_pred.png "
                       "painted with the dataset's palette (and <name>_overlay.png with --overlay).")
    _inference_args(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="input image files (.jpg, .png, ...) or folders of them; "
                   "unreadable ones are reported and skipped")
    p.add_argument("--out", default="predictions", metavar="DIR", help="output folder (default ./predictions)")
    p.add_argument("--overlay", type=float, default=0.0, metavar="ALPHA",
                   help="also save the prediction blended over the image with this opacity (e.g. 0.5)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="where to run")

    p = sub.add_parser("recipes", help="list the named recipes, or show one with every key",
                       description="Without NAME: list the named recipes. With NAME (or a recipe file): print all "
                       "its keys and values, after any key=value overrides.")
    p.add_argument("name", nargs="?", help="a named recipe or a recipe file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)

    sub.add_parser("released", help="list the released SETR checkpoints (eval --checkpoint official:<name>) with "
                   "the mIoU each should reproduce", description="The trained SETR models released by the paper's "
                   "authors (official:) and by mmsegmentation (mmseg:), with their README and paper mIoU.")

    from .data.download import add_arguments as data_arguments

    p = sub.add_parser("data", help="get a dataset: download ADE20K, unpack, check the layout, or say what to do",
                       description="Make a dataset ready in --root: ADE20K is downloaded (resumable, md5-checked; "
                       "--archive keeps the zip on e.g. Google Drive and reuses it), the Cityscapes zips are "
                       "unpacked once you have downloaded them; every dataset's layout is checked, and what needs "
                       "a login (Cityscapes, Pascal Context) is explained step by step. Exit status 2: not ready.")
    data_arguments(p)
    sub.add_parser("bench", help="speed / memory benchmarks against timm (setr_edu.perf.bench); "
                   "`bench data`: the data pipeline (setr_edu.perf.data_bench)", add_help=False)
    sub.add_parser("grade", help="grade a course assignment (setr_edu.checks.grade)", add_help=False)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parse_args``, but ``key=value`` overrides (and predict's images) may also come after options."""
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-")]
    target = "overrides" if hasattr(args, "overrides") else "images" if hasattr(args, "images") else None
    if unknown or (extra and target is None):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        setattr(args, target, list(getattr(args, target) or []) + extra)
    return args


# --- commands -----------------------------------------------------------------------------------------------------
def _load_recipe(args, extra: list[str]):
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


def _model_from_checkpoint(args, recipe_overrides: list[str] | None = None):
    """(model on device, recipe, checkpoint meta) from ``--checkpoint`` (+ ``--config`` / overrides)."""
    from .engine.build import build_model
    from .engine.checkpoint import check_compatible, load_checkpoint
    from .engine.distributed import resolve_device
    from .engine.trainer import check_device
    from .recipes import Recipe, apply_overrides

    if args.checkpoint.split(":", 1)[0] in ("official", "mmseg"):
        return _released_model(args, recipe_overrides)
    state = load_checkpoint(args.checkpoint)
    if getattr(args, "config", None):
        recipe = _load_recipe(args, [])
    else:
        recipe = Recipe.from_dict({k: v for k, v in state["recipe"].items()})
        recipe = apply_overrides(recipe, recipe_overrides or [])
    meta = state.get("meta", {})
    check_device(getattr(args, "device", None) or recipe.device)
    num_classes = recipe.num_classes or meta.get("num_classes")
    model = build_model(recipe, num_classes)
    check_compatible(state, model, recipe.to_dict(), args.checkpoint)
    model.load_state_dict(state["model"])
    device = resolve_device(getattr(args, "device", None) or recipe.device)
    meta = dict(meta, iter=state.get("iter"))
    return model.to(device).eval(), recipe, meta, device, num_classes


def _released_model(args, recipe_overrides: list[str] | None = None):
    """``--checkpoint official:<name>`` / ``mmseg:<name>``: download, convert, and the paper's recipe for it."""
    from .engine.distributed import resolve_device
    from .engine.trainer import check_device
    from .recipes import apply_overrides
    from .released import load_released, released_recipe

    model, entry = load_released(args.checkpoint)
    print(model.conversion_report)
    recipe = _load_recipe(args, []) if getattr(args, "config", None) else released_recipe(entry)
    recipe = apply_overrides(recipe, recipe_overrides or [])
    check_device(getattr(args, "device", None) or recipe.device)
    device = resolve_device(getattr(args, "device", None) or recipe.device)
    expected = ", ".join(f"{k} {v}" for k, v in (("SS", entry.ss), ("MS", entry.ms), ("paper SS", entry.paper_ss),
                                                 ("paper MS", entry.paper_ms)) if v is not None)
    meta = dict(iter=f"released ({entry.key}; expected mIoU: {expected})")
    return model.to(device).eval(), recipe, meta, device, model.num_classes


def _protocol(args, recipe, scales, flip) -> tuple[tuple[float, ...], bool]:
    """``--protocol`` (or the recipe's ``eval_protocol`` when no scale option is given) -> (scales, flip)."""
    from .engine.inference import protocol_views
    from .recipes import official_ms_ratios

    protocol = args.protocol or (recipe.eval_protocol if not (args.ms or args.scales or args.flip) else None)
    return protocol_views(protocol, official_ms_ratios(recipe)) if protocol else (scales, flip)


def _scales(args) -> tuple[tuple[float, ...], bool]:
    if args.ms:
        return PAPER_SCALES, True
    try:
        scales = tuple(float(s) for s in args.scales.split(",")) if args.scales else (1.0,)
    except ValueError:
        scales = ()
    if not scales or not all(0 < s < float("inf") for s in scales):
        raise ValueError(f"--scales {args.scales} is not valid: give positive numbers separated by commas, e.g. "
                         f"--scales 0.5,1.0,1.5 (1.0 is the image's own size)")
    return scales, args.flip


def cmd_eval(args) -> int:
    from .data.loader import resolve_num_workers
    from .engine.build import build_datasets
    from .engine.inference import evaluate

    scales, flip = _scales(args)
    extra = list(args.overrides) + ([f"data_root={args.data_root}"] if args.data_root else [])
    model, recipe, meta, device, num_classes = _model_from_checkpoint(args, extra)
    scales, flip = _protocol(args, recipe, scales, flip)
    (val_set,) = build_datasets(recipe, splits=("val",))
    if hasattr(val_set, "validate"):  # every file readable and consistent, before the long evaluation
        val_set.validate()
    mode = args.mode or recipe.eval_mode
    batch = args.batch_size or (recipe.batch_size if recipe.dataset == "synthetic" else 1)
    print(f"evaluating {args.checkpoint} (recipe {recipe.name}, iteration {meta.get('iter', '?')}) on {len(val_set)} "
          f"images: mode={mode}, scales={list(scales)}, flip={flip}")
    res = evaluate(model, val_set, num_classes, mode, recipe.crop_size, recipe.stride, scales, flip, batch_size=batch,
                   device=device, progress=True, min_size=recipe.crop_size if len(scales) > 1 else None,
                   class_names=meta.get("class_names"),
                   num_workers=resolve_num_workers(recipe.num_workers, recipe.dataset))
    print(res["report"])
    summary = {k: float(res[k]) for k in ("mIoU", "mAcc", "aAcc")}
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({**summary, "IoU": [float(v) for v in res["IoU"]]}, indent=1))
    return 0


def cmd_predict(args) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from .data.datasets import BadFileError, read_image
    from .data.transforms import to_tensor
    from .engine.inference import colorize, predict

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
        image, _ = to_tensor(rgb, np.zeros(rgb.shape[:2], dtype=np.uint8))
        with torch.no_grad():
            probs = predict(model, image[None].to(device), mode, recipe.crop_size, recipe.stride, scales, flip,
                            min_size=recipe.crop_size if len(scales) > 1 else None)
        colours = colorize(probs[0].argmax(0), palette)
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
    from .viz.palette import generic_palette

    return generic_palette(k)


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


def _cmd_data(args) -> int:
    from .data.download import command

    return command(args)


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        print(f"error: {module} is not available in this installation ({e})", file=sys.stderr)
        return 2
    return mod.main(argv) or 0


def _cmd_released(args) -> int:
    from .released import table

    print(table())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["bench", "data"]:  # the data-pipeline benchmark parses its own options
        return _delegate("setr_edu.perf.data_bench", argv[2:])
    if argv and argv[0] == "bench":  # owned by setr_edu.perf / setr_edu.checks: they parse their own options
        return _delegate("setr_edu.perf.bench", argv[1:])
    if argv and argv[0] == "grade":
        return _delegate("setr_edu.checks.grade", argv[1:])
    args = _parse(build_parser(), argv)
    args.argv = argv
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    from .engine.checkpoint import CheckpointError

    from .engine.preflight import TrainingError, TrainingInterrupted, one_line

    command = dict(train=cmd_train, eval=cmd_eval, predict=cmd_predict, recipes=cmd_recipes,
                   data=_cmd_data, released=_cmd_released)[args.command]
    try:
        return command(args)
    except TrainingInterrupted as e:  # SIGINT / SIGTERM during training: the checkpoint is saved
        print(f"\n{e}", file=sys.stderr)
        return 128 + e.signal
    except KeyboardInterrupt:
        print(f"\ninterrupted (Ctrl-C) during `{args.command}` before anything needed saving", file=sys.stderr)
        return 130
    except (*USER_ERRORS, CheckpointError, TrainingError) as e:
        if os.environ.get("SETR_EDU_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else one_line(e) if str(e).startswith("Caught ") else e
        print(f"error: {msg}\n(set SETR_EDU_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 2
    except FloatingPointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
