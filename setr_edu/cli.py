"""Command line: ``python -m setr_edu train|eval|predict|recipes|released|data|bench|grade``.

This file parses the arguments and turns mistakes into one line; what each command does is in
:mod:`setr_edu.cli_commands`, and ``bench`` / ``grade`` hand their arguments to setr_edu.perf / setr_edu.checks.

::

    python -m setr_edu train --config synthetic_cpu                   # a few minutes on a laptop CPU
    python -m setr_edu train --config ade20k_pup --data-root data/ade20k grad_accum_steps=8 amp=bf16
    torchrun --nproc_per_node=8 -m setr_edu train --config cityscapes_pup_80k --data-root data/cityscapes
    python -m setr_edu eval --checkpoint runs/synthetic_cpu/last.pt [--ms]
    python -m setr_edu predict --checkpoint runs/synthetic_cpu/last.pt photo.jpg --out preds/

Mistakes (an unknown recipe key, a missing dataset folder, a checkpoint from another model) end with one line
that says what to do, and exit status 2; ``SETR_EDU_DEBUG=1`` shows the full traceback instead. Ctrl-C, SIGTERM or
SIGHUP during training saves a checkpoint and ends with the command that resumes (exit status 130, 143 or 129; a
second signal during the save lets it finish first); ``predict`` reports unreadable images, writes the others and
exits with status 1.
"""
from __future__ import annotations

import argparse
import os
import sys

from .cli_commands import cmd_data, cmd_eval, cmd_predict, cmd_recipes, cmd_released, cmd_train
from .engine.inference import PAPER_RATIOS as PAPER_SCALES  # noqa: F401 (the paper's test ratios; old name)

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

    from .data.prepare import add_arguments as data_arguments

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


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        print(f"error: {module} is not available in this installation ({e})", file=sys.stderr)
        return 2
    return mod.main(argv) or 0


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m setr_edu`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    import signal

    if getattr(signal.getsignal(signal.SIGINT), "__name__", "") == "_ctrl_c_while_starting":  # setr_edu/__init__
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on each command handles Ctrl-C
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
                   data=cmd_data, released=cmd_released)[args.command]  # looked up here: tests patch cli.cmd_eval
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
