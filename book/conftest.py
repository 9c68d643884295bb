"""nbval runs every chapter under the `ci` profile (seconds per notebook) unless SETR_EDU_PROFILE says otherwise.

The kernel nbval starts inherits this process's environment, so setting the variable here reaches the notebooks.
Student versions of assignments are excluded: they stop at their first NotImplementedError by design and are
tested separately (tests/test_assignments.py).
"""
import os

os.environ.setdefault("SETR_EDU_PROFILE", "ci")
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

collect_ignore_glob = ["_build/*", "assignments/student/*", "**/.ipynb_checkpoints/*"]

# Every notebook runs from a new, empty working folder, as when Colab opens it alone: a notebook that reads a
# repository file by a relative path fails here, in the same nbval pass (issue 20). The Colab branches themselves
# and the installed-wheel-only run: tests/test_colab_branches.py.
import shutil  # noqa: E402
import tempfile  # noqa: E402

import nbval.plugin as _nbval  # noqa: E402

_setup, _teardown = _nbval.IPyNbFile.setup, _nbval.IPyNbFile.teardown


def _setup_in_an_empty_folder(self):
    kernel, self.empty_folder = _nbval.RunningKernel, tempfile.mkdtemp(prefix="setr_edu_nbval_")
    _nbval.RunningKernel = lambda name, cwd=None, **kw: kernel(name, cwd=self.empty_folder, **kw)
    try:
        return _setup(self)
    finally:
        _nbval.RunningKernel = kernel


def _teardown_and_clean(self):
    try:
        return _teardown(self)
    finally:
        if hasattr(self, "empty_folder"):
            shutil.rmtree(self.empty_folder, ignore_errors=True)


_nbval.IPyNbFile.setup, _nbval.IPyNbFile.teardown = _setup_in_an_empty_folder, _teardown_and_clean
