"""Starting a student's process: scratch folder, resource limits, kernel sandbox, channel.

What is enforced (README, "Isolation"):
- always: a separate process per submission with an address-space limit (memory_mb), a CPU
  limit, a file-size limit, no core dumps, a scrubbed environment, a scratch copy of the
  release folder as its only writable place, per-call and per-submission wall-time limits
  enforced from outside (SIGKILL), and an audit hook inside (worker.py) refusing processes,
  sockets, native-library loading and files outside the scratch folder and Python's own.
- where bubblewrap works (Linux; installed by the Makefile where apt is available): new
  user, PID, network, IPC and mount namespaces as an unprivileged uid; the filesystem holds
  only /usr, the Python installation and the scratch folder. No network device exists.
"""
import functools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SANDBOX_HOME = "/tmp/work"   # where the scratch folder appears inside bubblewrap


class GraderError(Exception):
    """The grader itself cannot run a student's process (not the student's fault)."""


@functools.lru_cache(maxsize=None)
def bubblewrap_works():
    """True when bubblewrap exists and can create its namespaces on this machine."""
    if not shutil.which("bwrap"):
        return False
    probe = subprocess.run(bubblewrap_prefix("/tmp") + ["true"], capture_output=True)
    return probe.returncode == 0


def bubblewrap_prefix(scratch):
    """The bwrap command line that shows the student nothing but /usr, Python and `scratch`."""
    cmd = ["bwrap", "--die-with-parent", "--new-session", "--unshare-all",
           "--uid", "65534", "--gid", "65534",
           "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    if os.path.exists("/etc/ld.so.cache"):
        cmd += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    pythons = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    for path in sorted(p for p in pythons if not p.startswith("/usr/")):
        cmd += ["--ro-bind", path, path]
    return cmd + ["--bind", str(scratch), SANDBOX_HOME, "--chdir", SANDBOX_HOME]


def make_scratch(support_dir, notebook_name):
    """A fresh folder holding a copy of the release folder (minus the notebook) and the worker."""
    scratch = Path(tempfile.mkdtemp(prefix="autograder-"))
    if support_dir:
        shutil.copytree(support_dir, scratch, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(notebook_name, "__pycache__", "*.pyc"))
    agent = scratch / ".autograder"
    agent.mkdir()
    for name in ("worker.py", "wire.py", "guard.py"):
        shutil.copy(HERE / name, agent / name)
    os.chmod(scratch, 0o777)  # the sandbox's unprivileged uid writes here
    return scratch


def limit_resources(memory_mb, cpu_seconds):
    """preexec_fn: limits inherited by bwrap and the worker."""
    memory, cpu_seconds = int(memory_mb) * 2**20, int(cpu_seconds)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 2**20, 64 * 2**20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class StudentProcess:
    """One running worker for one submission; `fds` (its channel, see worker.py) are passed to
    it and named on its command line. The channel itself is channel.py's business."""

    def __init__(self, scratch, limits, use_bubblewrap, fds):
        self.limits = limits
        home = SANDBOX_HOME if use_bubblewrap else str(scratch)
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": f"{home}/.matplotlib", "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1"}
        worker = [sys.executable, "-I", f"{home}/.autograder/worker.py", *map(str, fds)]
        prefix = bubblewrap_prefix(scratch) if use_bubblewrap else []
        try:
            self.process = subprocess.Popen(
                prefix + worker, cwd=scratch, env=env, pass_fds=tuple(fds),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=functools.partial(limit_resources, limits.memory_mb, limits.wall_seconds + 5))
        except (OSError, subprocess.SubprocessError) as exc:
            raise GraderError(f"cannot start a student process: {exc}") from exc

    def kill(self, grace=0.0):
        """Kill the process (and, through bwrap's --die-with-parent, everything in it), after
        giving it `grace` seconds to exit by itself; returns its exit status."""
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, 9)
            except ProcessLookupError:
                pass
        return self.process.wait()


def exit_reason(code, exc):
    """Words for why a student's process stopped answering."""
    if code is not None and code < 0:
        name = {9: "SIGKILL", 11: "SIGSEGV", 6: "SIGABRT", 24: "SIGXCPU (CPU time limit)",
                25: "SIGXFSZ (file size limit)"}.get(-code, f"signal {-code}")
        return f"the process was killed by {name}"
    if code is not None:
        return f"the process exited with status {code}"
    return f"the process stopped answering ({exc})"
