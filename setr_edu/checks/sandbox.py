"""Confine a process that runs a student's code: resource limits, a filesystem and signal fence, and a clean-up
that leaves no process behind. Linux only; used by :mod:`setr_edu.checks.runner` (``python -m setr_edu grade``).

``run_forked`` forks a child, confines it with ``confine`` and runs a function in it, under a wall-clock
limit; afterwards every process the child started is killed, including ones that detached themselves
(``setsid``, double fork): the grading process is a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so
orphans are re-parented to it instead of to init and ``kill_descendants`` still finds them.

What ``confine`` applies, and what it cannot:

- ``setrlimit``: CPU seconds (``RLIMIT_CPU``), memory (``RLIMIT_DATA``: what the code may allocate beyond the
  libraries already loaded), file size (``RLIMIT_FSIZE``), no core files, and processes (``RLIMIT_NPROC``, counted
  per user by the kernel; it does not bind root, so the parent also counts the child's processes and stops it
  past the limit).
- Landlock (Linux >= 5.13, unprivileged; https://docs.kernel.org/userspace-api/landlock.html): writes only in the
  scratch folder (and /dev for /dev/null and shared memory); reads only of system and Python folders, the
  setr_edu package and the scratch folder (not of other submissions, the scores or the instructor notebooks);
  no TCP (ABI 4); no signals to, and no abstract unix sockets of, processes outside the sandbox (ABI 6).
  Without Landlock (older kernels, macOS, some containers) a submission can read and write whatever the grading
  user can: ``landlock_abi`` says which case holds.
- As root: every capability is dropped (bounding set included, so an ``execve`` cannot give them back).
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import site
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER = 38, 24, 36
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446  # all arches
READ = (1 << 2) | (1 << 3)  # READ_FILE, READ_DIR
WRITE = (1 << 1) | sum(1 << b for b in range(4, 13))  # WRITE_FILE, REMOVE_*, MAKE_*
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3


@dataclass
class Limits:
    seconds: float  # wall clock
    threads: int = 1  # torch threads; the CPU-time limit is seconds * threads
    memory_mb: int = 4096  # 0: no limit
    processes: int = 64  # processes and threads the code may add; 0: no limit
    file_mb: int = 1024


@dataclass
class Outcome:
    code: int | None = None  # exit status
    signal: int | None = None  # killed by this signal
    timed_out: bool = False
    too_many_processes: bool = False
    seconds: float = 0.0

    def describe(self) -> str:
        if self.timed_out:
            return "timed out"
        if self.too_many_processes:
            return "stopped: it started too many processes"
        if self.signal == signal.SIGXCPU:
            return "stopped: CPU-time limit"
        if self.signal is not None:
            return f"crashed (killed by {signal.Signals(self.signal).name})"
        return "finished" if self.code == 0 else f"crashed (exit code {self.code})"


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none."""
    if not sys.platform.startswith("linux"):
        return 0
    r = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(r), 0)


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def readable_roots() -> list[str]:
    """Folders a submission may read: the system's, Python's (interpreter, standard library, site-packages) and
    the setr_edu package itself. Not the current folder, nor the repository around setr_edu (an editable install
    puts it on sys.path; it holds the instructor notebooks with the solutions)."""
    roots = ["/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/opt",
             sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             str(Path(__file__).resolve().parents[1])]  # setr_edu/
    try:
        roots += site.getsitepackages() + [site.getusersitepackages()]
    except AttributeError:  # virtualenv's old site.py
        pass
    return sorted({os.path.realpath(p) for p in roots if os.path.isdir(p)})


def _landlock(scratch: Path, abi: int) -> None:
    write = WRITE | (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0)
    attr = (ctypes.c_uint64 * 3)(READ | write, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                            ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    rules = [(p, READ) for p in readable_roots()] + [("/dev", READ | write), (str(scratch), READ | write)]
    for path, access in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        rule = _PathBeneath(access, fd)
        _libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), ctypes.c_uint32(0))
        os.close(fd)
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or _libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0):
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)


def _drop_capabilities() -> None:
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable x 2 words: all empty
    if _libc.capset(header, data):
        raise OSError(ctypes.get_errno(), "capset")


def user_tasks(uid: int) -> int:
    """Processes and threads of ``uid`` (what RLIMIT_NPROC counts)."""
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = Path(f"/proc/{d}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in st.splitlines() if ":" in line)
            if int(fields.get("Uid", "-1 0").split()[0]) == uid:
                n += int(fields.get("Threads", "1"))
    return n


def _vm_data_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    return 0


def confine(scratch: Path, limits: Limits, abi: int) -> None:
    """Apply the limits and the fence to this process (irreversible; inherited by everything it starts)."""
    def cap(kind, value):
        resource.setrlimit(kind, (value, value))

    cpu = int(limits.seconds * max(1, limits.threads)) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 3))
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_FSIZE, limits.file_mb << 20)
    if limits.memory_mb:
        cap(resource.RLIMIT_DATA, _vm_data_bytes() + (limits.memory_mb << 20))
    if limits.processes and sys.platform.startswith("linux"):
        cap(resource.RLIMIT_NPROC, user_tasks(os.getuid()) + limits.processes)
    if os.geteuid() == 0:
        _drop_capabilities()
    if abi:
        _landlock(scratch, abi)


# ------------------------------------------------------------------------------------------------- processes
def become_subreaper() -> bool:
    return sys.platform.startswith("linux") and _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _children() -> dict[int, list[tuple[int, str]]]:
    kids: dict[int, list[tuple[int, str]]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            kids.setdefault(int(ppid), []).append((int(d), state))
    return kids


def descendants(pid: int) -> list[int]:
    """Living (not zombie) processes below ``pid``."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        for child, state in kids.get(todo.pop(), []):
            todo.append(child)
            if state != "Z":
                out.append(child)
    return out


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_descendants(pid: int | None = None, keep: tuple[int, ...] = ()) -> int:
    """Stop, then kill every process below ``pid`` (default: this one) except ``keep``; return how many."""
    pid, killed = pid or os.getpid(), set()
    for _ in range(200):
        found = [p for p in descendants(pid) if p not in keep]
        if not found:
            break
        for sig in (signal.SIGSTOP, signal.SIGKILL):  # stopped processes cannot fork while we look
            for p in found:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
        killed.update(found)
        reap()
        time.sleep(0.01)
    reap()
    return len(killed)


def run_forked(target, scratch: Path, limits: Limits, abi: int, log: Path, keep_fds: tuple[int, ...] = (),
               on_start=None) -> Outcome:
    """Run ``target()`` in a confined child (cwd ``scratch``, output to ``log``); wait at most
    ``limits.seconds``; then kill whatever the child left. ``keep_fds`` stay open in the child."""
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            os.setpgid(0, 0)
            os.chdir(scratch)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0), os.dup2(out, 1), os.dup2(out, 2)
            keep = sorted(set(keep_fds))
            lo = 3
            for fd in keep + [1 << 16]:
                os.closerange(lo, fd)
                lo = fd + 1
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            confine(scratch, limits, abi)
            target()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - anything: report it in the log and exit
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush(), sys.stderr.flush()
            finally:
                os._exit(code)
    if on_start:
        on_start(pid)
    outcome, deadline, root = Outcome(), t0 + limits.seconds, os.geteuid() == 0
    next_count = 0.0
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFSIGNALED(status):
                outcome.signal = os.WTERMSIG(status)
            else:
                outcome.code = os.WEXITSTATUS(status)
            break
        now = time.monotonic()
        if now > deadline:
            outcome.timed_out = True
        elif limits.processes and now > next_count:  # RLIMIT_NPROC does not bind root: count here too
            next_count = now + (0.1 if root else 1.0)
            outcome.too_many_processes = len(descendants(pid)) > limits.processes * (1 if root else 4)
        if outcome.timed_out or outcome.too_many_processes:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            kill_descendants(pid)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:  # reaped by kill_descendants
                pass
            break
        time.sleep(0.02)
    kill_descendants()
    outcome.seconds = time.monotonic() - t0
    return outcome
