"""Run one command inside a root file system image, the way a container runtime would.

    unshare --mount --pid --fork --propagation private -- \
        python -m tools.gradescope_container IMAGE bubblewrap|docker-like -- COMMAND...

Inside a fresh mount and PID namespace (made by util-linux's `unshare`, as root), it mounts
/proc, /dev and /sys into IMAGE, makes IMAGE the root with pivot_root (not chroot: the kernel
refuses new user namespaces to a chrooted process, and bubblewrap needs one), then execs COMMAND
in /autograder (or /). The two set-ups:

- "bubblewrap": /sys as the host's, cgroups writable; user namespaces allowed: what a VM or a
  privileged container gives, and what the grader needs for its bubblewrap sandbox.
- "docker-like": Docker's defaults as far as the grader can tell: CAP_SYS_ADMIN dropped from
  the bounding set (no mount, no tmpfs, no network namespace), a seccomp filter refusing new
  user namespaces (clone and unshare with CLONE_NEWUSER: EPERM; clone3: ENOSYS, so that libc
  falls back to clone), and /sys, with the cgroup2 hierarchy, read-only. The grader must fall
  back to its "uid" sandbox and name what it went without.
The network stays the host's (setup.sh downloads packages).
"""
import ctypes
import os
import platform
import struct
import subprocess
import sys

SETUPS = ("bubblewrap", "docker-like")
CAP_SYS_ADMIN, PR_CAPBSET_DROP, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 21, 24, 22, 2
SYS_PIVOT_ROOT, MNT_DETACH = 155, 2                       # x86_64
CLONE_NEWUSER = 0x10000000
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def mount(*args):
    """util-linux mount (the host's, before the root changes); raises when it fails."""
    subprocess.run(["mount", *args], check=True)


def mount_file_systems(image, setup):
    """IMAGE becomes a mount point holding /proc (this PID namespace's), the host's /dev, and
    /sys: the host's (bubblewrap) or a read-only one with a read-only cgroup2 (docker-like)."""
    mount("--bind", image, image)
    mount("-t", "proc", "proc", f"{image}/proc")
    mount("--rbind", "/dev", f"{image}/dev")
    if setup == "bubblewrap":
        mount("--rbind", "/sys", f"{image}/sys")
    else:
        mount("-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", f"{image}/sys")
        mount("-t", "cgroup2", "-o", "ro,nosuid,nodev,noexec", "cgroup2", f"{image}/sys/fs/cgroup")


def pivot_into(image):
    """Make IMAGE this mount namespace's root and forget the old one."""
    libc = ctypes.CDLL(None, use_errno=True)
    os.makedirs(f"{image}/.oldroot", exist_ok=True)
    os.chdir(image)
    if libc.syscall(SYS_PIVOT_ROOT, b".", b".oldroot") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root failed")
    os.chdir("/")
    if libc.umount2(b"/.oldroot", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "cannot detach the old root")
    os.rmdir("/.oldroot")


def user_namespace_filter():
    """Classic BPF for x86_64: clone/unshare asking for CLONE_NEWUSER -> EPERM, clone3 -> ENOSYS,
    everything else allowed (Docker's default profile refuses the same)."""
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    code = [(0x20, 0, 0, 4), (0x15, 0, 4, 0xC000003E),                 # not x86_64: allow
            (0x20, 0, 0, 0),                                           # the system call's number
            (0x15, 7, 0, 435), (0x15, 2, 0, 272), (0x15, 1, 0, 56),    # clone3, unshare, clone
            (0x06, 0, 0, allow),
            (0x20, 0, 0, 16), (0x45, 0, 1, CLONE_NEWUSER),            # flags (first argument)
            (0x06, 0, 0, eperm), (0x06, 0, 0, allow), (0x06, 0, 0, enosys)]
    return b"".join(struct.pack("HBBI", *op) for op in code), len(code)


def become_docker_like():
    """Drop CAP_SYS_ADMIN from the bounding set (gone from root's capabilities at the next exec)
    and install the user namespace filter (allowed without no_new_privs: CAP_SYS_ADMIN is
    still effective here)."""
    if platform.machine() != "x86_64":
        raise SystemExit("the docker-like set-up knows only x86_64's system call numbers")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot drop CAP_SYS_ADMIN")
    code, length = user_namespace_filter()
    buffer = ctypes.create_string_buffer(code)

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    program = Program(length, ctypes.addressof(buffer))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp refused the filter")


def main(argv):
    """IMAGE SETUP -- COMMAND...: enter and exec (never returns)."""
    image, setup, command = argv[0], argv[1], argv[argv.index("--") + 1:]
    if setup not in SETUPS:
        raise SystemExit(f"set-up must be one of {SETUPS}")
    mount_file_systems(os.path.abspath(image), setup)
    pivot_into(os.path.abspath(image))
    if setup == "docker-like":
        become_docker_like()
    os.chdir("/autograder" if os.path.isdir("/autograder") else "/")
    os.execvpe(command[0], command, ENV)


if __name__ == "__main__":
    main(sys.argv[1:])
