"""Starting a student's process: scratch folder, resource limits, kernel sandbox, channel.

A sandbox mode is "bubblewrap", "uid" or "none" (README, "Isolation"):
- "bubblewrap": new user, PID, network, IPC and mount namespaces as uid 65534; the filesystem
  holds only /usr, the Python installation (autodiff libraries hidden) and a size-limited tmpfs
  /tmp whose /tmp/work, seeded from the scratch folder, is the only writable place: nothing the
  student writes reaches the host disk, and nothing survives the namespace's init.
- "uid": the grader runs as root; the worker runs as uid/gid 65534 with no supplementary
  groups, in a new network namespace where the kernel allows one, with its scratch folder its
  own. `choose_mode` first checks, from a process running as that uid, that it can read none
  of the secrets (the solutions, the hidden tests, the submissions, the outputs).
- "none": no kernel boundary; only with the CLI's explicit `--unsandboxed`.
Always: an audit hook inside (guard.py), rlimits (address space, CPU, file size, no core
dumps), wall-time limits enforced from outside (SIGKILL), and, where the machine lets us
create cgroups (v1 memory + pids, or v2), one cgroup per student process bounding the memory
of all its processes (tmpfs included) and their number, killed and removed when it ends.
"""
import functools
import importlib.util
import os
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from autograder import guard, wire

HERE = Path(__file__).resolve().parent
GRACE_SECONDS = 2.0          # after a soft timeout inside, before the hard kill outside
SANDBOX_HOME = "/tmp/work"   # the student's working folder inside bubblewrap (in its /tmp tmpfs)
SEED = "/seed"               # where bubblewrap shows the scratch folder, read-only, to copy from
NOBODY = 65534               # the unprivileged uid and gid of the "uid" mode
MODES = ("bubblewrap", "uid", "none")
SKIP_ENV = "AUTOGRADER_SANDBOX_SKIP"   # comma-separated modes `auto` must not pick (tests)
NEEDED_BY_NUMPY = {"ctypes", "_ctypes", "_posixsubprocess"}   # imported before the guard: not hidden
NO_BOUNDARY = ("no kernel-level sandbox works here: bubblewrap is missing or cannot create its namespaces, "
               "and the grader does not run as root (needed to run students as an unprivileged uid). "
               "Install bubblewrap (apt install bubblewrap), or run as root; to grade anyway, without a "
               "boundary a determined student cannot cross, pass --unsandboxed (not for grades of record).")


class GraderError(Exception):
    """The grader itself cannot run a student's process (not the student's fault)."""


class ChannelTimeout(Exception):
    """The student's process did not answer in time (it has been killed)."""


class ChannelClosed(Exception):
    """The student's process died or sent something unreadable (it has been killed)."""


def choose_mode(requested="auto", unsandboxed=False, protected=()):
    """The sandbox mode to grade in: `requested` ("auto" or one of MODES) where it works.

    "auto": bubblewrap where it works, else "uid" when running as root and uid 65534 can read
    none of `protected`, else "none" if `unsandboxed`; anything else raises GraderError."""
    skipped = set(os.environ.get(SKIP_ENV, "").split(","))
    if requested in ("auto", "bubblewrap") and "bubblewrap" not in skipped and bubblewrap_works():
        return "bubblewrap"
    if requested == "bubblewrap":
        raise GraderError("--sandbox bubblewrap was asked for, but bubblewrap does not work on this machine")
    problem = None
    if requested in ("auto", "uid") and "uid" not in skipped:
        problem = uid_problem(protected) if os.geteuid() == 0 else "the grader does not run as root"
        if problem is None:
            return "uid"
        if requested == "uid":
            raise GraderError(f"--sandbox uid cannot be used: {problem}")
    if unsandboxed:
        return "none"
    if requested == "none":
        raise GraderError("--sandbox none grades without a kernel boundary: pass --unsandboxed to confirm")
    raise GraderError(NO_BOUNDARY + (f" (uid {NOBODY}: {problem})" if problem else ""))


@functools.lru_cache(maxsize=None)
def bubblewrap_works():
    """True when bubblewrap exists and can create its namespaces and tmpfs on this machine."""
    if not shutil.which("bwrap"):
        return False
    probe = subprocess.run(bubblewrap_prefix(tempfile.gettempdir(), 16) + ["true"], capture_output=True)
    return probe.returncode == 0


def bubblewrap_prefix(scratch, tmpfs_mb):
    """The bwrap command line that shows the student nothing but /usr, Python (without the
    autodiff libraries), a read-only `scratch` at SEED, and a `tmpfs_mb` tmpfs at /tmp."""
    cmd = ["bwrap", "--die-with-parent", "--new-session", "--unshare-all",
           "--uid", str(NOBODY), "--gid", str(NOBODY),
           "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
           "--size", str(int(tmpfs_mb) * 2**20), "--tmpfs", "/tmp", "--dir", SANDBOX_HOME]
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
    for path in hidden_modules():
        if os.path.isdir(path):
            cmd += ["--tmpfs", path, "--remount-ro", path]
        else:
            cmd += ["--ro-bind", "/dev/null", path]
    return cmd + ["--ro-bind", str(scratch), SEED, "--chdir", SANDBOX_HOME]


@functools.lru_cache(maxsize=None)
def hidden_modules():
    """Folders and files of the installed modules the guard blocks (autodiff libraries, CPython's
    test modules), which bubblewrap replaces by empty ones; numpy's own imports stay."""
    found = []
    for name in sorted(guard.BLOCKED_MODULES - NEEDED_BY_NUMPY):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.submodule_search_locations:
            found += [p for p in spec.submodule_search_locations if os.path.isdir(p)]
        elif spec is not None and spec.origin and os.path.isfile(spec.origin):
            found.append(spec.origin)
    return tuple(found)


UID_PROBE = """
import os, sys
import numpy  # the worker needs it
for path in sys.stdin.read().splitlines():
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            os.close(os.open(path, os.O_RDONLY))
        print(path)
    except OSError:
        pass
"""


def uid_problem(protected, limit=5000):
    """None when a process running as uid 65534 can start Python (with numpy) and read none of
    `protected` (folders: their listing and every file in them); else what is wrong, in words."""
    paths = []
    for top in (Path(p) for p in protected):
        if top.is_dir():
            paths.append(str(top))
            for folder, _, files in os.walk(top):
                paths += [os.path.join(folder, f) for f in files][:limit - len(paths)]
        elif top.exists():
            paths.append(str(top))
    try:
        probe = subprocess.run([sys.executable, "-I", "-c", UID_PROBE], input="\n".join(paths), text=True,
                               capture_output=True, preexec_fn=become_nobody, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        probe = subprocess.CompletedProcess([], 1, "", str(exc))
    if probe.returncode != 0:
        return (f"uid {NOBODY} cannot run {sys.executable} with numpy (a folder above it may be closed to other "
                f"users, e.g. /root): install bubblewrap, or install Python where every user can run it")
    readable = probe.stdout.splitlines()
    if readable:
        return (f"uid {NOBODY} can read {len(readable)} file(s) or folder(s) a student must not, e.g. "
                f"{', '.join(readable[:3])}: close them to other users (chmod -R o-rwx on the repository's "
                f"solutions/, assignments/, source/, .git/, grading.yml, the submissions and the output "
                f"folder) or install bubblewrap")
    return None


def become_nobody():
    """preexec_fn: the rest of this process runs as uid/gid 65534, without supplementary groups."""
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def make_scratch(support_dir, notebook_name):
    """A fresh folder holding a copy of the release folder (minus the notebook) and the worker
    with its guard and wire format."""
    scratch = Path(tempfile.mkdtemp(prefix="autograder-"))
    if support_dir:
        shutil.copytree(support_dir, scratch, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(notebook_name, "__pycache__", "*.pyc"))
    agent = scratch / ".autograder"
    agent.mkdir()
    for name in ("worker.py", "wire.py", "guard.py"):
        shutil.copy(HERE / name, agent / name)
    os.chmod(scratch, 0o755)  # bubblewrap's unprivileged uid copies it
    return scratch


def give_to_nobody(scratch):
    """The scratch folder becomes uid 65534's own (the "uid" mode's working folder), closed to others."""
    for folder, dirs, files in os.walk(scratch):
        for name in [folder] + [os.path.join(folder, n) for n in dirs + files]:
            os.lchown(name, NOBODY, NOBODY)
    os.chmod(scratch, 0o700)


def limit_resources(memory_mb, cpu_seconds):
    """Limits inherited by bwrap and the worker."""
    memory, cpu_seconds = int(memory_mb) * 2**20, int(cpu_seconds)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 2**20, 64 * 2**20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@functools.lru_cache(maxsize=None)
def unshare_network():
    """libc's unshare(CLONE_NEWNET), looked up once in the grader (preexec_fn must not load libraries)."""
    import ctypes
    unshare = ctypes.CDLL(None, use_errno=True).unshare
    return lambda: unshare(0x40000000)


def start_child(limits, cgroup, unshare):
    """preexec_fn of the student's process: its cgroup, its rlimits, and in "uid" mode (where
    `unshare` is given) its own network namespace, where the kernel allows one, and the
    unprivileged uid (with a process limit for that uid where there is no cgroup)."""
    cgroup.join()
    limit_resources(limits.memory_mb, limits.wall_seconds + 5)
    if unshare is not None:
        if not cgroup.folders:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        unshare()
        become_nobody()


@functools.lru_cache(maxsize=None)
def cgroup_parents():
    """{"memory": folder, "pids": folder} (cgroup v1) or {"v2": folder}: where this process may
    create the student's cgroups, below its own; {} where it may not (rlimits only, then)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return {}
    own = {c: path for _, controllers, path in (line.split(":", 2) for line in lines) for c in controllers.split(",")}
    v1 = {c: Path("/sys/fs/cgroup", c, own[c].lstrip("/")) for c in ("memory", "pids") if c in own}
    if len(v1) == 2 and all(os.access(p, os.W_OK) for p in v1.values()):
        return v1
    v2 = Path("/sys/fs/cgroup", own.get("", "/").lstrip("/"))
    controllers = (v2 / "cgroup.subtree_control")
    if controllers.exists() and {"memory", "pids"} <= set(controllers.read_text().split()) \
            and os.access(v2, os.W_OK):
        return {"v2": v2}
    return {}


def cgroup_prefix():
    """The start of the names of this session's cgroups (the grader's session id: a run's own)."""
    return f"autograder-{os.getsid(0)}-"


class Cgroup:
    """The cgroup(s) of one student process: memory (tmpfs included) and process count of
    everything it starts, bounded together; `close()` kills all of it and removes the cgroups."""

    def __init__(self, memory_mb, processes):
        self.folders = []
        name = f"{cgroup_prefix()}{uuid.uuid4().hex[:12]}"
        memory = str(int(memory_mb) * 2**20)
        settings = {"memory": {"memory.limit_in_bytes": memory, "memory.memsw.limit_in_bytes": memory},
                    "pids": {"pids.max": str(processes)},
                    "v2": {"memory.max": memory, "memory.swap.max": "0", "pids.max": str(processes)}}
        try:
            for kind, parent in cgroup_parents().items():
                folder = parent / name
                folder.mkdir()
                self.folders.append(folder)
                for key, value in settings[kind].items():
                    if (folder / key).exists():
                        (folder / key).write_text(value)
        except OSError:
            self.close()

    def join(self):
        """Move the calling process (the child, before exec) into the cgroups."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def close(self):
        """Kill every process still in the cgroups, then remove them."""
        for _ in range(500):
            pids = {int(p) for folder in self.folders for p in read_lines(folder / "cgroup.procs")}
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        for folder in self.folders:
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
        self.folders = []


def read_lines(path):
    """The lines of a file, or none when it is gone."""
    try:
        return path.read_text().split()
    except OSError:
        return []


class StudentProcess:
    """One running worker for one submission, and the channel to it."""

    def __init__(self, scratch, limits, mode):
        self.limits = limits
        home = SANDBOX_HOME if mode == "bubblewrap" else str(scratch)
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": f"{home}/.matplotlib", "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1"}
        tmpfs_mb = limits.tmpfs_mb if mode == "bubblewrap" else 0
        self.cgroup = Cgroup(limits.memory_mb + tmpfs_mb, limits.processes)
        unshare = None
        if mode == "uid":
            give_to_nobody(scratch)
            unshare = unshare_network()
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        worker = [sys.executable, "-I", f"{home}/.autograder/worker.py", str(to_child_r), str(from_child_w)]
        if mode == "bubblewrap":   # seed the tmpfs working folder, then become the worker
            worker = bubblewrap_prefix(scratch, tmpfs_mb) + [
                "/bin/sh", "-c", f'cp -R {SEED}/. {SANDBOX_HOME} && exec "$@"', "sh"] + worker
        try:
            self.process = subprocess.Popen(
                worker, cwd=scratch, env=env, pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=functools.partial(start_child, limits, self.cgroup, unshare))
        except (OSError, subprocess.SubprocessError) as exc:
            self.cgroup.close()
            raise GraderError(f"cannot start a student process: {exc}") from exc
        finally:
            os.close(to_child_r)
            os.close(from_child_w)

    def request(self, message, seconds):
        """Send one message and wait at most `seconds` (+ grace) for the answer."""
        try:
            wire.send(self.to_child, message)
        except OSError:
            self.kill()
            raise ChannelClosed("the process had already exited") from None
        deadline = time.monotonic() + seconds + GRACE_SECONDS
        ready, _, _ = select.select([self.from_child], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            self.kill()
            raise ChannelTimeout(f"no answer within {seconds:g} s")
        try:
            return wire.receive(self.from_child)
        except (EOFError, wire.WireError, OSError) as exc:
            code = self.kill(grace=1.0)
            raise ChannelClosed(exit_reason(code, exc)) from None

    def kill(self, grace=0.0):
        """Kill the process and everything it started (its cgroup; bwrap's PID namespace), after
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
        code = self.process.wait()
        self.cgroup.close()
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self.to_child = self.from_child = -1
        return code


def exit_reason(code, exc):
    """Words for why a student's process stopped answering."""
    if code is not None and code < 0:
        name = {9: "SIGKILL", 11: "SIGSEGV", 6: "SIGABRT", 24: "SIGXCPU (CPU time limit)",
                25: "SIGXFSZ (file size limit)"}.get(-code, f"signal {-code}")
        return f"the process was killed by {name}"
    if code is not None:
        return f"the process exited with status {code}"
    return f"the process stopped answering ({exc})"
