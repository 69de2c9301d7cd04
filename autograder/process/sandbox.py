"""Starting a student's process: scratch folder, resource limits, kernel sandbox, channel.

A sandbox mode is "bubblewrap", "uid" or "none" (README, "Isolation"):
- "bubblewrap": new user, PID, network, IPC and mount namespaces as uid 65534; the filesystem
  holds only /usr, the Python installation (autodiff libraries hidden), the worker's code
  read-only at /grader and a tmpfs /tmp (sized by bwrap 0.7 and later; under bwrap 0.6, which
  has no --size, bounded by the cgroup's memory only) whose /tmp/work, seeded from the release
  folder, is the only writable place: nothing the student writes reaches the host disk, and
  nothing survives the namespace's init.
- "uid": the grader runs as root; each student process runs as a uid/gid of its own, taken from
  UIDS while it runs (no two concurrent processes share one, so none can signal another), with
  no supplementary groups; in a new network namespace where the kernel allows one; confined by
  Landlock (writes only in its working folder and /dev/null, no TCP, no abstract unix socket or
  signal leaving its domain) and by a seccomp filter (no socket, System V IPC, POSIX message
  queue, key ring, ptrace or cross-process memory access) where the kernel allows them; every
  process of its uid is killed when it ends. `choose_mode` first checks, from a process running
  as uid 65534, that it can read none of the secrets (the solutions, the hidden tests, the
  submissions, the outputs).
- "none": no kernel boundary; only with the CLI's explicit `--unsandboxed`.
Each process (one per session: channel.py) gets a working folder of its own, a fresh copy of
the release folder: outside bubblewrap, on a size-limited tmpfs where the grader may mount one
(root), else on the host disk; it is removed when the process ends. The worker's code lies in
a read-only folder next to it, outside it. Always: an audit hook inside (guard.py), rlimits
(address space, CPU, file size, no core dumps), wall-time limits enforced from outside
(SIGKILL), and, where the machine lets us create cgroups (v1 memory + pids, or v2), one cgroup
per student process bounding the memory of all its processes (tmpfs included) and their
number, killed and removed when it ends. A protection the kernel refuses is named in every
result (`refused_protections`). Whatever a run leaves behind (it was killed), the next run
removes (`clean_dead_runs`): each run holds a lock while it lives.
"""
import fcntl
import functools
import grp
import hashlib
import importlib.util
import os
import platform
import pwd
import re
import resource
import struct
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
SEED = "/seed"               # where bubblewrap shows the release folder, read-only, to copy from
AGENT = "/grader"            # where bubblewrap shows the worker's code, read-only
NOBODY = 65534               # the unprivileged uid and gid of bubblewrap, and of the "uid" mode's check
UIDS = range(NOBODY - 512, NOBODY)   # the "uid" mode's students: one uid per running process
MODES = ("bubblewrap", "uid", "none")
SKIP_ENV = "AUTOGRADER_SANDBOX_SKIP"   # comma-separated modes `auto` must not pick (tests)
# Comma-separated protections to treat as refused by the kernel (tests: a Docker-like container,
# where neither a network namespace, nor a tmpfs, nor a cgroup can be had): netns, tmpfs, cgroup,
# landlock, seccomp.
REFUSE_ENV = "AUTOGRADER_SANDBOX_REFUSE"
RUNS = Path(tempfile.gettempdir()) / f"autograder-runs-{os.geteuid()}"   # a lock per living run, per uid in use
# Blocked modules bubblewrap still shows: numpy imports ctypes before the guard is installed, and
# the guard replaces _posixsubprocess by a module that refuses (subprocess imports it by name).
NOT_HIDDEN = {"ctypes", "_ctypes", "_posixsubprocess"}


class GraderError(Exception):
    """The grader itself cannot run a student's process (not the student's fault)."""


def choose_mode(requested="auto", unsandboxed=False, protected=()):
    """The sandbox mode to grade in: `requested` ("auto" or one of MODES) where it works.

    "auto": bubblewrap where it works, else "uid" when running as root and uid 65534 can read
    none of `protected`, else "none" if `unsandboxed`; anything else raises GraderError. Removes
    first what earlier runs that died left behind (`clean_dead_runs`)."""
    clean_dead_runs()
    skipped = set(os.environ.get(SKIP_ENV, "").split(","))
    if requested in ("auto", "bubblewrap") and "bubblewrap" not in skipped and bubblewrap_works():
        return "bubblewrap"
    bubblewrap = "skipped by " + SKIP_ENV if "bubblewrap" in skipped else bubblewrap_problem()
    if requested == "bubblewrap":
        raise GraderError(f"--sandbox bubblewrap was asked for, but it cannot be used here: {bubblewrap}")
    problem = None
    if requested in ("auto", "uid") and "uid" not in skipped:
        problem = (uid_problem(protected) if os.geteuid() == 0 else
                   "the grader does not run as root (the uid mode needs root: run it with sudo)")
        if problem is None:
            return "uid"
        if requested == "uid":
            raise GraderError(f"--sandbox uid cannot be used: {problem}")
    if unsandboxed:
        return "none"
    if requested == "none":
        raise GraderError("--sandbox none grades without a kernel boundary: pass --unsandboxed to confirm")
    raise GraderError(
        f"no kernel-level sandbox works here: bubblewrap cannot be used ({bubblewrap}), and the unprivileged uid "
        f"cannot be used ({problem or 'skipped by ' + SKIP_ENV}). "
        "To grade anyway, without a boundary a determined student cannot cross, pass --unsandboxed "
        "(not for grades of record).")


def bubblewrap_works():
    """True when bubblewrap exists and can create its namespaces and tmpfs on this machine."""
    return bubblewrap_problem() is None


@functools.lru_cache(maxsize=None)
def bubblewrap_problem():
    """None when bubblewrap works here; else why not and what to do, in words."""
    if not shutil.which("bwrap"):
        return "it is not installed: apt install bubblewrap (or your system's package)"
    scratch = Path(tempfile.mkdtemp(prefix="autograder-probe-"))
    try:
        for name in ("release", "agent"):
            (scratch / name).mkdir()
        probe = subprocess.run(bubblewrap_prefix(scratch, 16) + ["true"], capture_output=True)
    finally:
        shutil.rmtree(scratch)
    if probe.returncode == 0:
        return None
    return (f"bwrap cannot create its namespaces here ({last_line(probe.stderr.decode(errors='replace'))}): allow "
            "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or the container's seccomp "
            "profile), or run the grader as root for the uid mode")


@functools.lru_cache(maxsize=None)
def bubblewrap_sizes_tmpfs():
    """True when the installed bwrap has `--size` (bubblewrap 0.7.0 and later), asked once from
    its own `--help`; 0.6.x (Ubuntu 22.04) has none, and its /tmp tmpfs is then bounded only by
    the cgroup's memory limit, which counts tmpfs pages (`refused_protections` says so)."""
    try:
        shown = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(r"^\s*--size\b", shown.stdout + shown.stderr, re.MULTILINE) is not None


def bubblewrap_prefix(scratch, tmpfs_mb):
    """The bwrap command line that shows the student nothing but /usr, Python (without the
    autodiff libraries), the scratch folder's release copy read-only at SEED and its worker code
    read-only at AGENT, and a tmpfs at /tmp of `tmpfs_mb` MiB where bwrap can size it."""
    size = ["--size", str(int(tmpfs_mb) * 2**20)] if bubblewrap_sizes_tmpfs() else []
    cmd = ["bwrap", "--die-with-parent", "--new-session", "--unshare-all",
           "--uid", str(NOBODY), "--gid", str(NOBODY),
           "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
           *size, "--tmpfs", "/tmp", "--dir", SANDBOX_HOME]
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
    return cmd + ["--ro-bind", str(Path(scratch) / "release"), SEED, "--ro-bind", str(Path(scratch) / "agent"), AGENT,
                  "--chdir", SANDBOX_HOME]


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
import os
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
    python = uid_python()
    if isinstance(python, str):
        return python
    probe = run_as_nobody(python, UID_PROBE, "\n".join(paths))
    if probe.returncode != 0:
        return f"uid {NOBODY} cannot run {python[0]} with numpy: {last_line(probe.stderr)}"
    readable = probe.stdout.splitlines()
    if readable:
        return (f"uid {NOBODY} can read {len(readable)} file(s) or folder(s) a student must not, e.g. "
                f"{', '.join(readable[:3])}: close them to other users (chmod -R o-rwx on the repository's "
                f"solutions/, assignments/, source/, .git/, grading.yml, the submissions and the output "
                f"folder) or install bubblewrap")
    return None


def run_as_nobody(python, source, stdin=""):
    """Run `source` with `python` ((interpreter, site folders, environment), see uid_python) as
    uid 65534, in /, as the student's worker starts (-I -S, the site folders appended)."""
    interpreter, site_folders, env = python
    try:
        return subprocess.run([interpreter, "-I", "-S", "-c", "import sys\nsys.path.extend(sys.argv[1:])\n" + source,
                               *site_folders], input=stdin, text=True,
                              capture_output=True, preexec_fn=become_nobody, timeout=60, cwd="/",
                              env={"PATH": "/usr/bin:/bin", **env})
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess([], 1, "", str(exc))


def last_line(text):
    """The last non-empty line of `text` (a probe's error), or "no message"."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


@functools.lru_cache(maxsize=None)
def uid_python():
    """What the "uid" mode's student process runs: (interpreter, site-packages folders,
    environment). This interpreter where uid 65534 can run it with numpy; else (the repository,
    or Python itself, lies below a folder closed to other users, such as /root or a 0700
    temporary folder) its copy made by `python_copy`, which every user can reach. A string
    saying why and what to do when neither runs."""
    own = (sys.executable, site_packages(), {})
    probe = run_as_nobody(own, "import numpy")
    if probe.returncode == 0:
        return own
    reason = last_line(probe.stderr)
    try:
        copy = python_copy()
    except OSError as exc:
        return (f"uid {NOBODY} cannot run {sys.executable} ({reason}) and a copy of it could not be made "
                f"({exc}): install Python where every user may run it (e.g. below /usr/local or /opt, with its "
                f"packages), or install bubblewrap")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = (str(copy / "bin" / version), tuple(str(p) for p in sorted(copy.glob("site-*"))),
              {"LD_LIBRARY_PATH": str(copy / "lib")})
    probe = run_as_nobody(python, "import numpy")
    if probe.returncode == 0:
        return python
    return (f"uid {NOBODY} can run neither {sys.executable} ({reason}) nor its copy {python[0]} "
            f"({last_line(probe.stderr)}): install Python where every user may run it (e.g. below /usr/local or "
            f"/opt, with its packages), or install bubblewrap")


def python_copy():
    """A folder every user may read holding what the student's Python needs: the interpreter,
    its shared library and standard library (without its tests and site-packages) and each of
    site_packages() as site-<k>, without the modules the guard blocks. Files are hard links
    where the filesystem allows (else copies), owned as the originals; made once per
    installation, in the temporary folder, and kept for later runs."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    executable, base = Path(os.path.realpath(sys.executable)), Path(sys.base_prefix)
    key = hashlib.sha256(repr((str(executable), str(base), site_packages(), hidden_modules(),
                               [os.stat(p).st_mtime_ns for p in site_packages()])).encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"autograder-python-{key}"
    if os.path.lexists(target):
        return trusted(target)
    building = Path(tempfile.mkdtemp(prefix=f"autograder-python-{key}-building-"))
    try:
        os.chmod(building, 0o755)
        link_tree(base / "lib" / version, building / "lib" / version,
                  {str(base / "lib" / version / name) for name in ("site-packages", "test")})
        for library in (base / "lib").glob("libpython*"):
            link(library, building / "lib" / library.name)
        (building / "bin").mkdir(mode=0o755)
        shutil.copy2(executable, building / "bin" / version)
        for k, folder in enumerate(site_packages()):
            link_tree(Path(folder), building / f"site-{k}", set(hidden_modules()))
        os.rename(building, target)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        if not os.path.lexists(target):      # another run made it meanwhile: use theirs
            raise
    return trusted(target)


def trusted(folder):
    """`folder`, when it is a folder of this user's that no one else may write; else OSError."""
    info = os.lstat(folder)
    if not os.path.isdir(folder) or folder.is_symlink() or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise OSError(f"{folder} belongs to someone else, or others may write it: remove it")
    return folder


def link(source, destination):
    """A hard link of `source` at `destination`; a copy across filesystems; symbolic links as they are."""
    if source.is_symlink():
        os.symlink(os.readlink(source), destination)
        return
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def link_tree(source, destination, skip):
    """`source`'s files linked (see `link`) below `destination` (folders 0755), but for the paths in `skip`."""
    destination.mkdir(mode=0o755, parents=True, exist_ok=True)
    for entry in os.scandir(source):
        if entry.path in skip:
            continue
        if entry.is_dir(follow_symlinks=False):
            link_tree(Path(entry.path), destination / entry.name, skip)
        else:
            link(Path(entry.path), destination / entry.name)


def become_nobody():
    """preexec_fn: the rest of this process runs as uid/gid 65534, without supplementary groups."""
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def make_scratch(support_dir, notebook_name):
    """A fresh folder of this run holding `release/`, a copy of the release folder (minus the
    notebook) from which each session's working folder is seeded, and `agent/`, the worker with
    its guard and wire format: read-only for the student, outside any working folder."""
    scratch = Path(tempfile.mkdtemp(prefix=run_prefix()))
    release = scratch / "release"
    if support_dir:
        shutil.copytree(support_dir, release, ignore=shutil.ignore_patterns(notebook_name, "__pycache__", "*.pyc"))
    else:
        release.mkdir()
    agent = scratch / "agent"
    agent.mkdir()
    for name in ("worker.py", "wire.py", "guard.py"):
        shutil.copy(HERE / name, agent / name)
        os.chmod(agent / name, 0o644)
    for folder in (scratch, release, agent):
        os.chmod(folder, 0o755)  # bubblewrap's unprivileged uid copies the release, the uid mode's runs the agent
    return scratch


def working_folder(release, size_mb, owner):
    """Outside bubblewrap: a working folder of one student process, seeded from `release`, owned
    by `owner` and closed to others -> (folder, mounted). A `size_mb` tmpfs where the grader
    may mount one (what the student writes is then bounded and never reaches the host disk),
    else a folder on the host disk."""
    work = Path(tempfile.mkdtemp(prefix=run_prefix() + "work-"))
    mounted = tmpfs_works() and mount_tmpfs(work, size_mb, owner)
    shutil.copytree(release, work, dirs_exist_ok=True)
    for folder, dirs, files in os.walk(work):
        for name in [folder] + [os.path.join(folder, n) for n in dirs + files]:
            os.lchown(name, owner, owner)
    os.chmod(work, 0o700)
    return work, mounted


def remove_working_folder(work, mounted):
    if mounted:
        unmount(work)
    shutil.rmtree(work, ignore_errors=True)


def limit_resources(memory_mb, cpu_seconds):
    """Limits inherited by bwrap and the worker."""
    memory, cpu_seconds = int(memory_mb) * 2**20, int(cpu_seconds)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 2**20, 64 * 2**20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@functools.lru_cache(maxsize=None)
def libc():
    """The C library, for the system calls Python 3.11 lacks (unshare, mount, umount2, prctl,
    Landlock's); loaded in the grader, never in a preexec_fn."""
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def simulated_refusals():
    """The protections REFUSE_ENV tells this process to treat as refused (tests)."""
    return set(os.environ.get(REFUSE_ENV, "").split(",")) - {""}


def unshare_network():
    """Move the calling process into a new network namespace (no devices); False where refused."""
    return "netns" not in simulated_refusals() and libc().unshare(0x40000000) == 0   # CLONE_NEWNET


def in_child(fn):
    """True when `fn()` returns true in a forked child of this process (probes that must not
    change the grader itself: namespaces, Landlock, seccomp)."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if fn() else 1)
        finally:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


@functools.lru_cache(maxsize=None)
def netns_works():
    """True when this process may create a network namespace (the "uid" mode's network)."""
    return in_child(unshare_network)


def mount_tmpfs(folder, size_mb, owner):
    """Mount a `size_mb` tmpfs on `folder`, owned by uid and gid `owner`, closed to others;
    False where this process may not mount (not root, or a container without CAP_SYS_ADMIN)."""
    if "tmpfs" in simulated_refusals():
        return False
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


# ---------------------------------------------------------------- Landlock and seccomp ("uid" mode)

LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446   # every architecture
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
# Landlock's filesystem rights that change something, by the ABI version that brought them.
LANDLOCK_WRITES = {1: 0x1ff2, 2: 0x2000, 3: 0x4000}   # write, remove, make...; refer; truncate
LANDLOCK_FILE_WRITES = 0x2 | 0x4000     # what a rule on a file (/dev/null) may allow: write, truncate
# System calls the student's process never needs and that would reach beyond it: sockets
# (the network, abstract unix sockets), System V IPC, POSIX message queues, key rings, ptrace
# and cross-process memory access.
SECCOMP_REFUSED = {
    "x86_64": (0xC000003E, [41, 29, 64, 68, 240, 248, 249, 250, 101, 310, 311]),
    "aarch64": (0xC00000B7, [198, 194, 190, 186, 180, 217, 218, 219, 117, 270, 271]),
}


@functools.lru_cache(maxsize=None)
def landlock_abi():
    """The kernel's Landlock ABI version (0: none, or refused)."""
    if "landlock" in simulated_refusals():
        return 0
    version = libc().syscall(LANDLOCK_CREATE_RULESET, None, 0, 1)   # LANDLOCK_CREATE_RULESET_VERSION
    return max(version, 0)


def seccomp_program():
    """The classic-BPF seccomp filter refusing SECCOMP_REFUSED on this machine (EPERM), as a
    (program, buffer) pair of ctypes objects; None on an architecture it does not know."""
    import ctypes
    if platform.machine() not in SECCOMP_REFUSED or "seccomp" in simulated_refusals():
        return None
    arch, numbers = SECCOMP_REFUSED[platform.machine()]
    allow, refuse = 0x7FFF0000, 0x00050000 | 1          # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    code = [(0x20, 0, 0, 4), (0x15, 1, 0, arch), (0x06, 0, 0, refuse),   # another ABI: refused
            (0x20, 0, 0, 0)]                                             # the system call's number
    if arch == 0xC000003E:
        code += [(0x35, 0, 1, 0x40000000), (0x06, 0, 0, refuse)]         # x32 numbers: refused
    for number in numbers:
        code += [(0x15, 0, 1, number), (0x06, 0, 0, refuse)]
    code.append((0x06, 0, 0, allow))
    buffer = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in code))

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    return Program(len(code), ctypes.addressof(buffer)), buffer


class Confinement:
    """What a "uid"-mode student process applies to itself before exec (`apply`, in the
    preexec_fn): no new privileges, Landlock (writes only beneath `work` and to /dev/null, no
    TCP, abstract unix sockets and signals scoped to its own domain) and the seccomp filter,
    each unless told not to (`landlock`, `seccomp`: what confinement_works found the kernel
    allows). Everything is built here, in the grader."""

    def __init__(self, work, landlock=True, seccomp=True):
        import ctypes
        self.ctypes = ctypes
        self.abi = landlock_abi() if landlock else 0
        writes = sum(bits for version, bits in LANDLOCK_WRITES.items() if version <= self.abi)
        self.ruleset = struct.pack("QQQ", writes, 0x3 if self.abi >= 4 else 0, 0x3 if self.abi >= 6 else 0)
        self.ruleset_size = 8 * (1 + (self.abi >= 4) + (self.abi >= 6))
        self.rules = [(os.fsencode(work), writes), (b"/dev/null", LANDLOCK_FILE_WRITES & writes)]
        self.seccomp = seccomp_program() if seccomp else None

    def apply(self):
        """In the child: raises OSError when a protection the probes found working fails."""
        c, lib = self.ctypes, libc()
        if lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(c.get_errno(), "no_new_privs refused")
        if self.abi:
            ruleset = lib.syscall(LANDLOCK_CREATE_RULESET, c.c_char_p(self.ruleset), c.c_size_t(self.ruleset_size),
                                  0)
            if ruleset < 0:
                raise OSError(c.get_errno(), "Landlock refused its ruleset")
            for path, access in self.rules:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                rule = struct.pack("=Qi", access, fd)
                if lib.syscall(LANDLOCK_ADD_RULE, ruleset, 1, c.c_char_p(rule), 0) != 0:   # PATH_BENEATH
                    raise OSError(c.get_errno(), "Landlock refused a rule")
                os.close(fd)
            if lib.syscall(LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
                raise OSError(c.get_errno(), "Landlock refused to restrict")
            os.close(ruleset)
        if self.seccomp is not None:
            program, _ = self.seccomp
            if lib.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, c.byref(program), 0, 0) != 0:
                raise OSError(c.get_errno(), "seccomp refused its filter")


@functools.lru_cache(maxsize=None)
def confinement_works():
    """{"landlock": bool, "seccomp": bool}: what a child of this process could apply, each alone."""
    work = tempfile.mkdtemp(prefix="autograder-probe-")
    try:
        landlock, seccomp = Confinement(work, seccomp=False), Confinement(work, landlock=False)
        return {"landlock": landlock.abi > 0 and in_child(lambda: landlock.apply() or True),
                "seccomp": seccomp.seccomp is not None and in_child(lambda: seccomp.apply() or True)}
    finally:
        os.rmdir(work)


def refused_protections(mode):
    """The protections of `mode` (README, "Isolation") the kernel refuses on this machine, in
    words: every result and the TA's summary name them."""
    refused = []
    if not cgroup_parents():
        refused.append("cgroup (memory, process count and CPU time of all the student's processes together; "
                       "derivation cases timed by the wall clock only)")
    elif not cpu_accounting():
        refused.append("cgroup CPU accounting (derivation cases timed by the wall clock only)")
    if mode == "bubblewrap" and not bubblewrap_sizes_tmpfs():
        refused.append("tmpfs size (this bwrap has no --size: /tmp is bounded by the cgroup's memory limit" +
                       (")" if cgroup_parents() else ", and without a cgroup only per file)"))
    if mode != "bubblewrap" and not tmpfs_works():
        refused.append("tmpfs (what the student writes is bounded per file only, on the host disk)")
    if mode == "uid":
        works = confinement_works()
        if not netns_works():
            refused.append("network namespace" + (" (the seccomp filter refuses sockets)" if works["seccomp"] else ""))
        if not works["landlock"]:
            refused.append("Landlock (the student may write where its uid may, and send signals)")
        if not works["seccomp"]:
            refused.append("seccomp (sockets, System V IPC and ptrace allowed)")
    return refused


def start_child(limits, cgroup, uid, confinement, new_netns):
    """preexec_fn of the student's process: its cgroup, its rlimits, and in "uid" mode (where
    `uid` is given) its own network namespace (`new_netns`: the kernel allows one), the
    unprivileged `uid` (with a process limit where there is no cgroup) and the confinement
    (Landlock, seccomp). A protection found working that fails here stops the start."""
    cgroup.join()
    limit_resources(limits.memory_mb, limits.wall_seconds + 5)
    if uid is not None:
        if not cgroup.folders:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        if new_netns and not unshare_network():
            raise OSError("the network namespace was refused")
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        confinement.apply()


# ---------------------------------------------------------------- runs, and what they leave behind

@functools.lru_cache(maxsize=None)
def run_id():
    """This run's id, under a lock held as long as any process of this run (the grader and its
    pool) lives: a run whose lock is free has died (clean_dead_runs)."""
    own_folder(RUNS)
    ident = uuid.uuid4().hex[:12]
    fd = os.open(RUNS / f"{ident}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return ident


def own_folder(folder):
    """Make `folder` (0700) unless it exists; GraderError unless this user owns it and no one
    else may write it (another user may have made it first, in the shared temporary folder)."""
    folder.mkdir(mode=0o700, exist_ok=True)
    try:
        trusted(folder)
    except OSError as exc:
        raise GraderError(f"{exc}, then grade again") from None


def cgroup_prefix():
    """The start of the names of this session's cgroups (the grader's session id)."""
    return f"autograder-{os.getsid(0)}-"


def run_prefix():
    """The start of the names of this run's cgroups, scratch and working folders."""
    return f"{cgroup_prefix()}{run_id()}-"


def locked_by_someone(path):
    """True when a living process holds the flock of `path`; else takes it -> the descriptor."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return True
    return fd


def clean_dead_runs():
    """Remove what runs that died left behind (their cgroups and processes, tmpfs mounts,
    scratch and working folders), and kill every process of a "uid"-mode uid no run holds."""
    run_id()
    for lock in RUNS.glob("*.lock"):
        if not re.fullmatch(r"uid-\d+|[0-9a-f]{12}", lock.stem):
            continue
        held = locked_by_someone(lock)
        if held is True:
            continue
        if lock.name.startswith("uid-"):
            if os.geteuid() == 0:
                kill_uid(int(lock.stem[4:]))
        elif lock.stem != run_id():
            remove_run(lock.stem)
            lock.unlink()
        os.close(held)


def remove_run(ident):
    """Everything named after run `ident`: cgroups (their processes killed), the processes
    whose command line or working folder names it, mounts, folders."""
    pattern = f"autograder-*-{ident}-*"
    remove_cgroups([folder for parent in cgroup_parents().values() for folder in parent.glob(pattern)])
    for pid in processes_naming(f"-{ident}-"):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    mounts = [line.split()[1] for line in read_lines_of(Path("/proc/self/mounts"))]
    for mount in mounts:
        if f"-{ident}-" in os.path.basename(mount) and os.path.basename(mount).startswith("autograder-"):
            unmount(mount)
    for folder in Path(tempfile.gettempdir()).glob(pattern):
        shutil.rmtree(folder, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def known_ids():
    """uids and gids this machine's users and groups have (never taken for a student)."""
    return {u.pw_uid for u in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}


def allocate_uid():
    """A uid of UIDS no other student process holds -> (uid, lock descriptor); its leftovers
    (processes of an earlier holder) are killed first."""
    own_folder(RUNS)
    for uid in UIDS:
        if uid in known_ids():
            continue
        path = RUNS / f"uid-{uid}.lock"
        os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))
        held = locked_by_someone(path)
        if held is not True:
            kill_uid(uid)
            return uid, held
    raise GraderError(f"every uid from {UIDS.start} to {UIDS.stop - 1} is in use by a student process")


def kill_uid(uid):
    """Kill every process of `uid`: a child of the grader becomes that uid and signals all it
    may (kill(-1)), again until no living process of the uid is left; whatever they started,
    detached or not, goes too."""
    for _ in range(500):
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                for _ in range(3):
                    os.kill(-1, 9)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        if not processes_of(uid):
            return
        time.sleep(0.005)
    raise GraderError(f"the processes of uid {uid} could not all be killed")


def processes_naming(name):
    """The pids of the processes whose command line or working folder holds `name` within a
    path of the temporary folder's autograder-* folders (a run's workers, bubblewrap included)."""
    found, marker = [], os.fsencode(os.path.join(tempfile.gettempdir(), "autograder-"))
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            where = Path(entry.path, "cmdline").read_bytes().split(b"\0") + [os.fsencode(os.readlink(
                os.path.join(entry.path, "cwd")))]
        except OSError:
            continue
        if any(part.startswith(marker) and os.fsencode(name) in part for part in where):
            found.append(int(entry.name))
    return found


def processes_of(uid):
    """The pids of the living (not zombie) processes whose real, effective or saved uid is `uid`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = dict(line.split(":", 1) for line in read_lines_of(Path(entry.path, "status")) if ":" in line)
        if fields.get("State", "Z").split()[:1] != ["Z"] and str(uid) in fields.get("Uid", "").split()[:3]:
            found.append(int(entry.name))
    return found


@functools.lru_cache(maxsize=None)
def cgroup_parents():
    """{"memory": folder, "pids": folder} (cgroup v1, with "cpuacct" where this process may create
    one) or {"v2": folder}: where this process may create the student's cgroups, below its own;
    {} where it may not (rlimits only, then)."""
    if "cgroup" in simulated_refusals():
        return {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return {}
    own = {c: path for _, controllers, path in (line.split(":", 2) for line in lines) for c in controllers.split(",")}
    v1 = {c: Path("/sys/fs/cgroup", c, own[c].lstrip("/")) for c in ("memory", "pids", "cpuacct") if c in own}
    v1 = {c: folder for c, folder in v1.items() if os.access(folder, os.W_OK)}
    if {"memory", "pids"} <= set(v1):
        return v1
    v2 = Path("/sys/fs/cgroup", own.get("", "/").lstrip("/"))
    controllers = (v2 / "cgroup.subtree_control")
    if controllers.exists() and {"memory", "pids"} <= set(controllers.read_text().split()) \
            and os.access(v2, os.W_OK):
        return {"v2": v2}
    return {}


CPU_USAGE = {"cpuacct": "cpuacct.usage", "v2": "cpu.stat"}   # where a cgroup counts its CPU time


def cpu_accounting():
    """Does a student's session get a cgroup that counts its CPU time (derivation cases)?"""
    return bool(set(cgroup_parents()) & set(CPU_USAGE))


def remove_cgroups(folders):
    """Kill every process in the cgroup `folders`, then remove them."""
    for _ in range(2500):
        pids = {int(p) for folder in folders for p in read_lines_of(folder / "cgroup.procs")}
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(0.002)
    for folder in folders:
        for _ in range(2500):    # a loaded machine may take seconds to reap what was killed
            try:
                folder.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.002)


class Cgroup:
    """The cgroup(s) of one student process: memory (tmpfs included) and process count of
    everything it starts, bounded together, and the CPU time all of it used (`cpu_seconds`);
    `close()` kills all of it and removes the cgroups."""

    def __init__(self, memory_mb, processes):
        self.folders = []
        name = f"{run_prefix()}{uuid.uuid4().hex[:12]}"
        memory = str(int(memory_mb) * 2**20)
        settings = {"memory": {"memory.limit_in_bytes": memory, "memory.memsw.limit_in_bytes": memory},
                    "pids": {"pids.max": str(processes)},
                    "v2": {"memory.max": memory, "memory.swap.max": "0", "pids.max": str(processes)},
                    "cpuacct": {}}
        self.usage = None   # the file that counts its CPU time
        try:
            for kind, parent in cgroup_parents().items():
                folder = parent / name
                folder.mkdir()
                self.folders.append(folder)
                if kind in CPU_USAGE:
                    self.usage = folder / CPU_USAGE[kind]
                for key, value in settings[kind].items():
                    if (folder / key).exists():
                        (folder / key).write_text(value)
        except OSError:
            self.close()

    def join(self):
        """Move the calling process (the child, before exec) into the cgroups."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def cpu_seconds(self):
        """CPU time (user and system) of every process that ever ran in the cgroup, those that
        have ended included, to the nanosecond (v1) or microsecond (v2); None without a cgroup."""
        try:
            text = self.usage.read_text()
        except (AttributeError, OSError):
            return None
        if self.usage.name == CPU_USAGE["v2"]:
            fields = dict(line.split() for line in text.splitlines() if line.count(" ") == 1)
            return int(fields["usage_usec"]) / 1e6
        return int(text) / 1e9

    def close(self):
        """Kill every process still in the cgroups, then remove them."""
        remove_cgroups(self.folders)
        self.folders, self.usage = [], None


def read_lines_of(path):
    """The lines of a file, or none when it is gone."""
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


class StudentProcess:
    """One running worker: one session of one submission; `fds` (its channel, see worker.py and
    channel.py) are passed to it and named on its command line. Its working folder, its cgroup
    and, in "uid" mode, its uid are its own, and go when it is killed."""

    def __init__(self, scratch, limits, mode, fds):
        self.limits = limits
        self.work, self.mounted, self.uid, self.uid_lock = None, False, None, None
        scratch = Path(scratch)
        if mode == "uid":
            self.uid, self.uid_lock = allocate_uid()
        if mode != "bubblewrap":
            self.work, self.mounted = working_folder(scratch / "release", limits.tmpfs_mb, self.uid or 0)
        home = SANDBOX_HOME if mode == "bubblewrap" else str(self.work)
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": f"{home}/.matplotlib", "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1"}
        tmpfs_mb = limits.tmpfs_mb if mode == "bubblewrap" or self.mounted else 0
        self.cgroup = Cgroup(limits.memory_mb + tmpfs_mb, limits.processes)
        agent = AGENT if mode == "bubblewrap" else str(scratch / "agent")
        python, site_folders, python_env = uid_python() if mode == "uid" else (sys.executable, site_packages(), {})
        env.update(python_env)
        worker = [python, "-I", "-S", f"{agent}/worker.py", *map(str, fds), *site_folders]
        if mode == "bubblewrap":   # seed the tmpfs working folder, then become the worker
            worker = bubblewrap_prefix(scratch, tmpfs_mb) + [
                "/bin/sh", "-c", f'cp -R {SEED}/. {SANDBOX_HOME} && exec "$@"', "sh"] + worker
        confinement = Confinement(self.work, **confinement_works()) if mode == "uid" else None
        new_netns = mode == "uid" and netns_works()
        try:
            self.process = subprocess.Popen(
                worker, cwd=self.work or scratch, env=env, pass_fds=tuple(fds),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=functools.partial(start_child, limits, self.cgroup, self.uid, confinement, new_netns))
        except (OSError, subprocess.SubprocessError) as exc:
            self.process = None
            self.release()
            raise GraderError(f"cannot start a student process: {exc}") from exc

    def kill(self, grace=0.0):
        """Kill the process and everything it started (its cgroup; bwrap's PID namespace; every
        process of its uid), after giving it `grace` seconds to exit by itself; returns its exit
        status."""
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
        self.release()
        return code

    def release(self):
        """Everything of this process that outlives it: cgroup, processes of its uid, working
        folder, the uid itself."""
        self.cgroup.close()
        if self.uid_lock is not None:
            kill_uid(self.uid)
            os.close(self.uid_lock)
            self.uid_lock = None
        if self.work:
            remove_working_folder(self.work, self.mounted)
            self.work = None


def exit_reason(code, exc):
    """Words for why a student's process stopped answering."""
    if code == 86:   # worker.py: a thread of the student's was alive after a call
        return "a thread it started was still running (the grader does not allow threads)"
    if code is not None and code < 0:
        name = {9: "SIGKILL", 11: "SIGSEGV", 6: "SIGABRT", 24: "SIGXCPU (CPU time limit)",
                25: "SIGXFSZ (file size limit)"}.get(-code, f"signal {-code}")
        return f"the process was killed by {name}"
    if code is not None:
        return f"the process exited with status {code}"
    return f"the process stopped answering ({exc})"
