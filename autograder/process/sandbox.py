"""Starting a student's process: scratch folder, resource limits, kernel sandbox, channel.

A sandbox mode is "bubblewrap", "uid" or "none" (README, "Isolation"):
- "bubblewrap": new user, PID, network, IPC and mount namespaces as uid 65534; the filesystem
  holds only /usr, the Python installation (autodiff libraries hidden) and a size-limited tmpfs
  /tmp whose /tmp/work, seeded from the scratch folder, is the only writable place: nothing the
  student writes reaches the host disk, and nothing survives the namespace's init.
- "uid": the grader runs as root; the worker runs as uid/gid 65534 with no supplementary
  groups, in a new network namespace where the kernel allows one, with its working folder its
  own. `choose_mode` first checks, from a process running as that uid, that it can read none
  of the secrets (the solutions, the hidden tests, the submissions, the outputs).
- "none": no kernel boundary; only with the CLI's explicit `--unsandboxed`.
Outside bubblewrap, where the grader may mount one (root), the working folder is a copy of the
scratch folder on a size-limited tmpfs of its own; elsewhere it is the scratch folder itself.
Always: an audit hook inside (guard.py), rlimits (address space, CPU, file size, no core
dumps), wall-time limits enforced from outside (SIGKILL), and, where the machine lets us
create cgroups (v1 memory + pids, or v2), one cgroup per student process bounding the memory
of all its processes (tmpfs included) and their number, killed and removed when it ends.
"""
import functools
import importlib.util
import os
import resource
import shutil
import site
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from autograder.process import guard

HERE = Path(__file__).resolve().parent
SANDBOX_HOME = "/tmp/work"   # the student's working folder inside bubblewrap (in its /tmp tmpfs)
SEED = "/seed"               # where bubblewrap shows the scratch folder, read-only, to copy from
NOBODY = 65534               # the unprivileged uid and gid of the "uid" mode
MODES = ("bubblewrap", "uid", "none")
SKIP_ENV = "AUTOGRADER_SANDBOX_SKIP"   # comma-separated modes `auto` must not pick (tests)
# Blocked modules bubblewrap still shows: numpy imports ctypes before the guard is installed, and
# the guard replaces _posixsubprocess by a module that refuses (subprocess imports it by name).
NOT_HIDDEN = {"ctypes", "_ctypes", "_posixsubprocess"}


class GraderError(Exception):
    """The grader itself cannot run a student's process (not the student's fault)."""


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
    raise GraderError(
        "no kernel-level sandbox works here: bubblewrap is missing or cannot create its namespaces (install it: "
        f"apt install bubblewrap), and the unprivileged uid cannot be used ({problem or 'skipped by ' + SKIP_ENV}). "
        "To grade anyway, without a boundary a determined student cannot cross, pass --unsandboxed "
        "(not for grades of record).")


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
def site_packages():
    """This interpreter's site-packages folders. The worker starts without `site` (python -S: no
    .pth file runs in the student's process, such as the editable install's finder, which took
    about 25 ms a start) and puts them on sys.path itself."""
    return tuple(p for p in site.getsitepackages() if os.path.isdir(p))


@functools.lru_cache(maxsize=None)
def hidden_modules():
    """Folders and files of the installed modules the guard blocks (autodiff libraries, CPython's
    test modules), which bubblewrap replaces by empty ones."""
    found = []
    for name in sorted(guard.BLOCKED_MODULES - NOT_HIDDEN):
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
    `protected` (folders: their listing and the first `limit` files in them); else what is
    wrong, in words."""
    paths = []
    for top in (Path(p) for p in protected):
        if top.is_dir():
            paths.append(str(top))
            for folder, _, files in os.walk(top):
                paths += [os.path.join(folder, f) for f in files][:max(limit - len(paths), 0)]
                if len(paths) >= limit:
                    break
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
def libc():
    """The C library, for the system calls Python 3.11 lacks (unshare, mount, umount2); loaded
    in the grader, never in a preexec_fn."""
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def unshare_network():
    """A function that moves the calling process into a new network namespace (no devices)."""
    unshare = libc().unshare
    return lambda: unshare(0x40000000)   # CLONE_NEWNET


def mount_tmpfs(folder, size_mb, owner):
    """Mount a `size_mb` tmpfs on `folder`, owned by uid and gid `owner`, closed to others;
    False where this process may not mount (not root, or a container without CAP_SYS_ADMIN)."""
    options = f"size={int(size_mb)}m,mode=0700,uid={owner},gid={owner}".encode()
    return libc().mount(b"tmpfs", os.fsencode(folder), b"tmpfs", 2 | 4, options) == 0   # nosuid, nodev


def unmount(folder):
    """Detach the filesystem mounted on `folder` and remove the folder."""
    libc().umount2(os.fsencode(folder), 2)   # MNT_DETACH
    shutil.rmtree(folder, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def tmpfs_works():
    """True when this process may mount a tmpfs (the "uid" and "none" modes' working folder)."""
    if os.geteuid() != 0:
        return False
    probe = Path(tempfile.mkdtemp(prefix="autograder-probe-"))
    mounted = mount_tmpfs(probe, 1, 0)
    if mounted:
        unmount(probe)
    else:
        probe.rmdir()
    return mounted


def working_tmpfs(scratch, size_mb, owner):
    """Outside bubblewrap: a `size_mb` tmpfs holding a copy of `scratch`, owned by `owner`, so
    that what the student writes is bounded and never reaches the host disk; None where no
    tmpfs can be mounted (the student then works in `scratch` itself)."""
    if not tmpfs_works():
        return None
    work = Path(tempfile.mkdtemp(prefix="autograder-work-"))
    if not mount_tmpfs(work, size_mb, owner):
        work.rmdir()
        return None
    shutil.copytree(scratch, work, dirs_exist_ok=True)
    return work


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
        for _ in range(2500):
            pids = {int(p) for folder in self.folders for p in read_lines(folder / "cgroup.procs")}
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.002)
        for folder in self.folders:
            for _ in range(2500):    # a loaded machine may take seconds to reap what was killed
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.002)
        self.folders = []


def read_lines(path):
    """The lines of a file, or none when it is gone."""
    try:
        return path.read_text().split()
    except OSError:
        return []


class StudentProcess:
    """One running worker for one submission; `fds` (its channel, see worker.py and channel.py)
    are passed to it and named on its command line."""

    def __init__(self, scratch, limits, mode, fds):
        self.limits = limits
        self.work = None
        if mode != "bubblewrap":
            self.work = working_tmpfs(scratch, limits.tmpfs_mb, NOBODY if mode == "uid" else 0)
        folder = self.work or scratch
        home = SANDBOX_HOME if mode == "bubblewrap" else str(folder)
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": f"{home}/.matplotlib", "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1"}
        tmpfs_mb = limits.tmpfs_mb if mode == "bubblewrap" or self.work else 0
        self.cgroup = Cgroup(limits.memory_mb + tmpfs_mb, limits.processes)
        unshare = None
        if mode == "uid":
            give_to_nobody(folder)
            unshare = unshare_network()
        worker = [sys.executable, "-I", "-S", f"{home}/.autograder/worker.py", *map(str, fds), *site_packages()]
        if mode == "bubblewrap":   # seed the tmpfs working folder, then become the worker
            worker = bubblewrap_prefix(scratch, tmpfs_mb) + [
                "/bin/sh", "-c", f'cp -R {SEED}/. {SANDBOX_HOME} && exec "$@"', "sh"] + worker
        try:
            self.process = subprocess.Popen(
                worker, cwd=folder, env=env, pass_fds=tuple(fds),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=functools.partial(start_child, limits, self.cgroup, unshare))
        except (OSError, subprocess.SubprocessError) as exc:
            self.cgroup.close()
            if self.work:
                unmount(self.work)
            raise GraderError(f"cannot start a student process: {exc}") from exc

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
        if self.work:
            unmount(self.work)
            self.work = None
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
