"""What a grader returns and prints: :class:`CheckResult`, built step by step with a :class:`Grader`.

Every ``check_*`` function follows the same pattern::

    g = Grader("A2", "attention", "multi-head self-attention", tests=4)  # points: assignments.py
    with g.run():                      # a student's exception becomes a plain-words failure, not a traceback
        out = g.call(student, x)       # on copies of x, on the module's device; the output comes back on the CPU
        g.test(out.shape == ref.shape, "output shape ...", "wrong output shape ...")
        ...
    return g.finish()                  # prints the report, records it for the grading command, returns it

``finish`` adds one more test (unless ``inputs_test=False``): the student's code left the tensors it was given
through :meth:`Grader.call` unchanged ("your code modifies its input in place" otherwise).

Each test shows one line, ``[ok]`` or ``[FAIL]`` (hints below it); when a check stops early, one ``[skip]``
line says how many tests never ran, so the lines always add up to the header's ``passed/tests``. ``[info]``
lines (preconditions worth no points) are not tests.

The score is ``points * passed_tests / tests`` (points from :mod:`setr_edu.checks.assignments`): a notebook that
stops at step 2 of 4 gets half marks, not zero.
When the environment variable ``SETR_EDU_GRADE_LOG`` names a file (the grading command sets it, see
:mod:`setr_edu.checks.grade`), each result is also appended to it as one JSON line.
"""
from __future__ import annotations

import contextlib
import json
import os
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

LOG_ENV = "SETR_EDU_GRADE_LOG"
OFFICIAL = {"active": False}  # set by grade.official() while the grading command's own check calls run


IN_PLACE_FIX = ("write new tensors instead: x = x + f(x), not x += f(x); q = q / s, not q /= s; no x.mul_(...) "
                "or x[...] = ... on a tensor you were given (clone it first)")


class StopCheck(Exception):
    """Raised inside a grader to stop after a failed step that later steps depend on."""


@dataclass
class CheckResult:
    """The outcome of one assignment part: ``passed``, ``score`` out of ``max_score``, and ``messages``."""

    assignment: str
    part: str
    title: str
    passed: bool
    score: float
    max_score: float
    tests_passed: int = 0
    tests: int = 0
    messages: list[str] = field(default_factory=list)

    def report(self) -> str:
        """The friendly multi-line report a student sees under the check cell."""
        verdict = "PASSED" if self.passed else "NOT YET"
        head = (f"{self.assignment} {self.title}: {verdict} - {self.tests_passed}/{self.tests} tests, "
                f"score {self.score:g}/{self.max_score:g}")
        return "\n".join([head, *self.messages])

    def to_json(self) -> dict:
        return asdict(self)

    def __repr__(self) -> str:  # short on purpose: the full report is printed by the check itself
        state = "passed" if self.passed else "failed"
        return f"CheckResult({self.assignment}/{self.part}: {state}, {self.score:g}/{self.max_score:g})"


def where_in_student_code(exc: BaseException) -> str:
    """``" (in forward, line 12: q = ...)"`` for the innermost traceback frame that is the student's code."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames
           if "site-packages" not in f.filename and f"{os.sep}torch{os.sep}" not in f.filename
           and f"setr_edu{os.sep}checks" not in f.filename and not f.filename.endswith("contextlib.py")]
    if not own:
        return ""
    f = own[-1]
    line = f" {f.line.strip()}" if f.line else ""
    return f" (in {f.name}, line {f.lineno}:{line})"


class Grader:
    """Accumulates the tests of one check and turns them into a :class:`CheckResult`."""

    def __init__(self, assignment: str, part: str, title: str, tests: int, verbose: bool = True,
                 inputs_test: bool = True):
        from .assignments import points  # the one place where points are written down

        # + 1 test, added by finish(): the student's code leaves the tensors it is given unchanged
        self.result = CheckResult(assignment, part, title, False, 0.0, float(points(assignment, part)), 0,
                                  tests + int(inputs_test))
        self.verbose, self.inputs_test = verbose, inputs_test
        self.calls, self.modified, self.told_in_place = 0, [], False
        self.where = ""  # the input being tried, for messages: set with case()
        self.explain = None  # optional () -> [hints]: what the grader already knows, shown first after a crash

    def case(self, where: str) -> None:
        """Name the input the next steps try (e.g. "x of shape (1, 2, 6, 4)"), for the report of a crash."""
        self.where = where

    def call(self, fn, *args, device=None, what: str = "", **kwargs):
        """``fn(*args)`` on copies of the inputs, moved to the module's device; the output comes back on the CPU.
        If ``fn`` changes a tensor it was given, that is recorded for the in-place test of :meth:`finish`."""
        from .compare import call_student

        out, modified = call_student(fn, *args, device=device, **kwargs)
        self.calls += 1
        if modified:
            self.modified.append(what or getattr(fn, "__name__", type(fn).__name__))
        return out

    def ok(self, message: str) -> None:
        self.result.tests_passed += 1
        self.result.messages.append(f"  [ok]   {message}")

    def fail(self, message: str, hint: str | list[str] = "", stop: bool = False) -> None:
        if sum(m.startswith(("  [ok]", "  [FAIL]")) for m in self.result.messages) >= self.result.tests:
            self.result.messages.append(f"         {message}")  # a further problem of a test already counted
        else:
            self.result.messages.append(f"  [FAIL] {message}")
        hints = [hint] if isinstance(hint, str) else list(hint)
        if self.modified and not self.told_in_place:  # the likely cause of this failure: say it first
            self.told_in_place = True
            hints.insert(0, f"your code modifies its input in place ({self.modified[0]}), which changes what "
                            "it computes from: " + IN_PLACE_FIX)
        for h in hints:
            if h:
                self.result.messages.append(f"         {h}")
        if stop:
            raise StopCheck

    def test(self, condition: bool, ok_message: str, fail_message: str, hint: str | list[str] = "",
             stop: bool = False) -> bool:
        """One test: ``ok_message`` if ``condition`` holds, else ``fail_message`` (+ hints); ``stop`` ends the check."""
        if condition:
            self.ok(ok_message)
        else:
            self.fail(fail_message, hint, stop)
        return bool(condition)

    def require(self, condition: bool, ok_message: str, fail_message: str, hint: str | list[str] = "") -> None:
        """A precondition worth no points (e.g. layers the assignment gives): report it, stop if it fails."""
        if condition:
            self.result.messages.append(f"  [info] {ok_message}")
        else:
            self.fail(fail_message, hint, stop=True)

    def note(self, message: str) -> None:
        self.result.messages.append(f"         {message}")

    @contextlib.contextmanager
    def run(self, what: str = "your code"):
        """Turn the student's exceptions into failures: NotImplementedError reads "not implemented yet"."""
        try:
            yield self
        except StopCheck:
            pass
        except NotImplementedError:
            self.fail("not implemented yet: replace `raise NotImplementedError()` with your code, then run this "
                      "cell again")
        except Exception as exc:  # anything the student's code raised, reported in plain words
            on = f" on {self.where}" if self.where else ""
            hint = ("It ran on the earlier inputs but not on this one: is a size (channels, heads, classes, image "
                    "or grid size) hard-coded? Take every size from the arguments and from the input's shape."
                    if self.result.tests_passed and self.where else
                    "Read the message above, fix that line, re-run the cell that defines it and then this check.")
            known = []
            if self.explain is not None:
                try:
                    known = list(self.explain())
                except Exception:
                    known = []
            self.fail(f"{what} raised {type(exc).__name__}{on}: {exc}{where_in_student_code(exc)}", known + [hint])

    def finish(self) -> CheckResult:
        r = self.result
        if self.inputs_test and self.calls:
            if self.modified:
                self.fail(f"your code modifies its input in place ({self.modified[0]}): the caller's tensor is "
                          "changed after the call",
                          IN_PLACE_FIX)
            elif r.tests_passed:
                self.ok("leaves the tensors it is given unchanged (no in-place changes to its inputs)")
        shown = sum(m.startswith(("  [ok]", "  [FAIL]")) for m in r.messages)
        if shown < r.tests:  # stopped early: say how many tests never ran, so the lines add up to the header
            n = r.tests - shown
            r.messages.append(f"  [skip] {n} more test{'s' if n > 1 else ''} not run: "
                              f"{'they need' if n > 1 else 'it needs'} the step that failed above")
        r.passed = r.tests_passed == r.tests
        r.score = round(r.max_score * r.tests_passed / r.tests, 2) if r.tests else 0.0
        if self.verbose:
            print(r.report())
        record(r)
        return r


def record(result: CheckResult) -> None:
    """Append ``result`` to ``$SETR_EDU_GRADE_LOG`` (one JSON object per line) when grading; no-op otherwise."""
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    entry = dict(result.to_json(), official=OFFICIAL["active"])
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def run_official(assignment: str, part: str, call: str, thunk) -> CheckResult | None:
    """Run one of the grading command's own check calls (``thunk`` evaluates ``call``) and record its result.

    A name the call needs that the notebook never defined (a renamed class, a cell that was not run) becomes a
    zero with a message that says so, instead of a traceback.
    """
    OFFICIAL["active"] = True
    try:
        return thunk()
    except Exception as exc:  # only the call's own arguments can fail here: the checks catch everything else
        from .assignments import ASSIGNMENTS

        p = ASSIGNMENTS[assignment].part(part)
        why = (f"{exc}: the grader calls `{call}`, so the notebook must define that name (did you rename it, or "
               "not run its cell?)" if isinstance(exc, NameError) else f"{type(exc).__name__}: {exc}")
        r = CheckResult(assignment, part, part.replace("_", " "), False, 0.0, float(p.points), 0, 1,
                        [f"  [FAIL] {why}"])
        print(r.report())
        record(r)
        return r
    finally:
        OFFICIAL["active"] = False
