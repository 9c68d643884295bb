"""Execute book notebooks in place under a run profile (default ``cpu``), keeping widget state for the HTML book.

Usage: ``python book/_scripts/execute_notebooks.py book/ch01_images_as_sequences.ipynb [...] [--profile cpu]``.
The notebook is first synced (badge + setup cell), then run top to bottom with nbclient from the notebook's own
folder, and written back with its outputs. Commit notebooks executed this way: the book is built from these stored outputs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).parent))
from sync_notebooks import sync  # noqa: E402


def execute(path: Path, profile: str = "cpu", timeout: int = 1800) -> float:
    sync(path)
    nb = nbformat.read(path, as_version=4)
    os.environ["SETR_EDU_PROFILE"] = profile
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                            store_widget_state=True)
    t0 = time.time()
    client.execute()
    nbformat.write(nb, path)
    return time.time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--profile", default="cpu", choices=["ci", "cpu", "gpu"])
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = ap.parse_args(argv)
    for p in args.notebooks:
        print(f"executing {p} (profile {args.profile}) ...", flush=True)
        print(f"  done in {execute(p, args.profile, args.timeout):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
