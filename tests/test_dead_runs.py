"""A run that dies leaves nothing the next run does not remove (issue 19, item 5).

A class run in `--sandbox none` is killed (SIGKILL, as a notebook that kills its parent would)
while a student's process hangs in a cell: its cgroup, its tmpfs mount, its working and scratch
folders and the process itself stay behind. The next run, whatever it grades, removes them all."""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from assignments.lstm.samples import reference_cells, release
from autograder.process import sandbox
from autograder.samples import write_submission
from tests.conftest import REPO

HANG = "import time\nwhile True:\n    try:\n        time.sleep(100)\n    except BaseException:\n        pass"


def leftovers(run):
    """What is named after `run`: folders in the temporary folder, mounts, cgroups, processes."""
    pattern = f"autograder-*-{run}-*"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines() if f"-{run}-" in line]
    processes = []
    for proc in Path("/proc").iterdir():
        try:
            where = (proc / "cmdline").read_bytes() + os.fsencode((proc / "cwd").readlink())
            if proc.name.isdigit() and f"-{run}-".encode() in where:
                processes.append(proc.name)
        except OSError:
            pass
    return {"folders": list(Path(tempfile.gettempdir()).glob(pattern)), "mounts": mounts, "processes": processes,
            "cgroups": [p for parent in sandbox.cgroup_parents().values() for p in parent.glob(pattern)]}


@pytest.mark.parametrize("refused", ["", "cgroup"])
def test_a_run_that_died_leaves_nothing_the_next_run_does_not_clean(config, tmp_path, refused):
    """refused "cgroup": where the machine gives no cgroups, the process is found by its names."""
    root, out = tmp_path / "submitted", tmp_path / "out"
    env = {**os.environ, sandbox.REFUSE_ENV: refused}
    write_submission(root, "hangs", "lstm", config.notebook, release(config, reference_cells(), [HANG]))
    args = ["-m", "autograder", "grade", str(root), "--assignment", "lstm", "--no-gradebook", "--jobs", "1",
            "--sandbox", "none", "--unsandboxed"]
    before = set(sandbox.RUNS.glob("*.lock"))
    dying = subprocess.Popen([sys.executable, *args, "--out", str(out)], cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
    run = None
    for _ in range(600):
        new = [p.stem for p in set(sandbox.RUNS.glob("*.lock")) - before if not p.name.startswith("uid-")]
        run = new[0] if new else None
        if run and list(Path(tempfile.gettempdir()).glob(f"autograder-*-{run}-work-*")):
            break
        time.sleep(0.05)
    time.sleep(1)                           # the student's process is in its cell
    dying.send_signal(signal.SIGKILL)
    dying.wait()
    left = leftovers(run)
    assert left["folders"] and left["processes"], left
    if sandbox.tmpfs_works():
        assert left["mounts"], left
    if sandbox.cgroup_parents() and not refused:
        assert left["cgroups"], left
    write_submission(root, "hangs", "lstm", config.notebook, release(config, reference_cells()))
    done = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "again")], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    assert leftovers(run) == {"folders": [], "mounts": [], "processes": [], "cgroups": []}
    assert not (sandbox.RUNS / f"{run}.lock").exists()
