"""nbval runs every chapter under the `ci` profile (seconds per notebook) unless SETR_EDU_PROFILE says otherwise.

The kernel nbval starts inherits this process's environment, so setting the variable here reaches the notebooks.
Student versions of assignments are excluded: they stop at their first NotImplementedError by design and are
tested separately (tests/test_assignments.py).
"""
import os

os.environ.setdefault("SETR_EDU_PROFILE", "ci")
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

collect_ignore_glob = ["_build/*", "assignments/student/*", "**/.ipynb_checkpoints/*"]
