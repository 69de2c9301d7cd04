"""Attacks on the sandbox, each a real notebook graded through the CLI in one class run.

Every attacker implements `sigmoid` honestly (1 point) and answers the rest with whatever its
attack steals (the reference's source), else raises NotImplementedError: it must earn at most
that 1 point. An honest classmate graded in the same run keeps full marks, the run exits 0 with
every row and feedback page, and nothing of it is alive afterwards. Then the "uid" path (we run
as root) and the refusal to grade without a kernel boundary.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from assignments.lstm.samples import FUNCTIONS, reference_cells, release, with_body
from autograder.process import sandbox
from autograder.samples import write_submission
from tests.conftest import REPO, run_cli

HONEST = "zz_honest"
VICTIM = "zz_victim"    # graded after the attackers (alphabetical order with --jobs 1)
MARKER = "autograder-attack-marker"
# What an honest notebook may do besides its answers: plots, the support package, namedtuples, logging.
HONEST_EXTRAS = """
import collections, logging, typing
import matplotlib.pyplot as plt
from seqlab import checks, gradcheck, plots
Point = collections.namedtuple("Point", "x y")
Pair = typing.NamedTuple("Pair", [("a", int)])
plt.plot([1, 2], [3, 4])
plt.savefig("figure.png")
logging.getLogger("student").warning("a warning through logging")
"""


def stolen_answers(attack):
    """Answer cells: sigmoid honest; the rest run the stolen reference if `attack` stole it."""
    cells = {name: with_body(name, f"args = tuple(locals().values())\nif stolen:\n    ns = {{}}\n"
                                   f"    exec(stolen, ns)\n    return ns['{name}'](*args)\nraise NotImplementedError")
             for name in FUNCTIONS}
    cells["sigmoid"] = reference_cells()["sigmoid"]
    return cells, ["import os, sys, time\nstolen = None", attack]


def attacks(root, out):
    """name -> (source of the attacking cell, which sets `stolen` to the reference's text if it
    can; the error that must stop it, as the results' cell_errors show it)."""
    solutions = REPO / "solutions" / "lstm.py"
    victim = root / VICTIM / "lstm" / "lstm.ipynb"
    return {
        "a_tmp_fill": ("for k in range(40):\n    open(f'/tmp/fill{k}', 'wb').write(b'x' * 60 * 2**20)", "Refused"),
        "a_work_fill": ("for k in range(40):\n    open(f'fill{k}', 'wb').write(b'x' * 60 * 2**20)", "No space left"),
        "a_fork_hold": ("for _ in range(4):\n    if os.fork() == 0:\n        b = bytearray(600 * 2**20)\n"
                       "        time.sleep(60)\n        os._exit(0)", "Refused"),
        "a_fork_bomb": ("while True:\n    os.fork()", "Refused"),
        "a_dir_fd": (f"fd = os.open({str(solutions.parent)!r}, os.O_RDONLY)\n"
                    "stolen = os.read(os.open('lstm.py', os.O_RDONLY, dir_fd=fd), 10**6).decode()", "Refused"),
        "a_chdir": (f"os.chdir({str(solutions.parent)!r})\nstolen = open('lstm.py').read()", "Refused"),
        "a_fork_exec": ("import subprocess\n"
                       f"r, w = os.pipe()\nsubprocess._fork_exec(['/bin/cat', {str(solutions)!r}], [b'/bin/cat'], True, "
                       "(w,), None, None, -1, -1, -1, -1, w, -1, r, w, True, False, None, None, None, -1, None, False)\n"
                       "stolen = os.read(r, 10**6).decode()", "Refused"),
        "a_posixsubprocess": ("import _posixsubprocess\n_posixsubprocess.fork_exec()", "Refused"),
        "a_imp": ("import _imp, glob, importlib.machinery as m\n"
                  "path = glob.glob(sys.base_prefix + '/lib/python3*/lib-dynload/_posixsubprocess*')[0]\n"
                  "_imp.create_dynamic(m.ModuleSpec('_posixsubprocess', m.ExtensionFileLoader('_posixsubprocess', path)))",
                  "ImportRefused"),
        "a_classmate": (f"stolen_nb = open({str(victim)!r}).read()\n"
                       f"open({str(victim)!r}, 'w').write('{{}}')", "Refused"),
        "a_rename": (f"open('forged', 'w').write('{{}}')\nos.rename('forged', {str(victim)!r})", "Refused"),
        "a_detached": (f"import subprocess\nsubprocess.Popen(['/bin/sh', '-c', 'sleep 3; echo forged > "
                      f"{out}/grades.csv # {MARKER}'], start_new_session=True)", "Refused"),
        "a_torch": ("import torch\nstolen = None", "ImportRefused"),
        "a_ctypes": ("import ctypes\nctypes.CDLL(None).system(b'true')", "ImportRefused"),
        "a_frames": ("import gc\nworker = [o for o in gc.get_objects() if type(o).__name__ == 'Worker']", "Refused"),
        # traceback.extract_stack hands sys._getframe's frame to walk_stack, a module attribute: from
        # it, f_back and f_locals reach the worker's as_grader, which runs anything with the hook off
        "a_walk_stack": ("import traceback\ncaptured = []\nreal = traceback.walk_stack\n"
                         "traceback.walk_stack = lambda f: captured.append(f) or real(f)\ntraceback.extract_stack()\n"
                         "if not captured:\n    raise LookupError('no frame reached')\nframe = captured[0]\n"
                         "while 'as_grader' not in frame.f_locals:\n    frame = frame.f_back\n"
                         f"stolen = frame.f_locals['as_grader'](lambda: open({str(solutions)!r}).read())", "LookupError"),
    }


def survivors():
    """Processes on this machine whose command line names the attack marker."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and MARKER.encode() in (proc / "cmdline").read_bytes():
                found.append(proc.name)
        except OSError:
            pass
    return found


SANDBOXES = {   # mode -> CLI flags, the attacks left out
    "bubblewrap": ([], ()),
    # without a tmpfs of its own, a full working folder would be 2.4 GB of the host's disk
    "none": (["--sandbox", "none", "--unsandboxed"], () if sandbox.tmpfs_works() else ("a_work_fill",)),
}


@pytest.fixture(scope="module", params=[pytest.param("bubblewrap", marks=pytest.mark.skipif(
    not sandbox.bubblewrap_works(), reason="bubblewrap does not work on this machine")), "none"])
def class_run(request, config, tmp_path_factory):
    """Every attacker, an honest student and a victim, graded in one CLI run (--jobs 1)."""
    mode = request.param
    flags, left_out = SANDBOXES[mode]
    base = tmp_path_factory.mktemp("attacks")
    root, out = base / "submitted", base / "out"
    honest = release(config, reference_cells(), [HONEST_EXTRAS])
    for name in (HONEST, VICTIM):
        write_submission(root, name, "lstm", config.notebook, honest)
    victim_bytes = (root / VICTIM / "lstm" / config.notebook).read_bytes()
    tried = {name: attack for name, attack in attacks(root, out).items() if name not in left_out}
    for name, (attack, _) in tried.items():
        cells, extra = stolen_answers(attack)
        write_submission(root, name, "lstm", config.notebook, release(config, cells, extra))
    done = run_cli("grade", str(root), "--assignment", "lstm", "--out", str(out), "--no-gradebook", "--jobs", "1",
                   *flags)
    grades_after_exit = (out / "grades.csv").read_text()
    time.sleep(4)                      # the detached process would have rewritten grades.csv by now
    return mode, root, out, done, victim_bytes, grades_after_exit, tried


def test_every_attacker_gets_at_most_its_honest_points(class_run, config):
    mode, root, out, done, victim_bytes, grades_after_exit, attempted = class_run
    assert done.returncode == 0, done.stderr
    rows = {r["student_id"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert set(rows) == {p.name for p in root.iterdir()}
    assert all((out / "feedback" / f"{s}.html").is_file() for s in rows)
    for student, row in rows.items():
        result = json.loads((out / "results" / f"{student}.json").read_text())
        assert result["sandbox"] == mode
        if student.startswith("a_"):
            assert float(row["total"]) <= 1, (student, row)
            stopped_by = attempted[student][1]
            assert any(stopped_by in e["error"] for e in result["cell_errors"]), (student, result["cell_errors"])
        else:
            assert float(row["total"]) == config.max_score, (student, row)
            assert result["cell_errors"] == [], (student, result["cell_errors"])
    assert (root / VICTIM / "lstm" / config.notebook).read_bytes() == victim_bytes
    assert (out / "grades.csv").read_text() == grades_after_exit
    assert not survivors()
    assert not [p for parent in sandbox.cgroup_parents().values() for p in parent.glob(sandbox.cgroup_prefix() + "*")]


@pytest.fixture
def repo_copy():
    """copy_repo(), removed afterwards."""
    copy = copy_repo()
    yield copy
    shutil.rmtree(copy.parent)


def copy_repo():
    """The repository's files the grader needs, in a folder of our own (to close its secrets)
    that other users can reach (pytest's own tmp_path is closed to them)."""
    copy = Path(tempfile.mkdtemp(prefix="repo-copy-")) / "repo"
    for name in ("autograder", "assignments", "solutions", "release", "source"):
        shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("grading.yml", "nbgrader_config.py"):
        shutil.copy(REPO / name, copy / name)
    os.chmod(copy.parent, 0o755)
    os.chmod(copy, 0o755)
    return copy


def grade_in(copy, root, out, *flags, env=None):
    command = [sys.executable, "-m", "autograder", "grade", str(root), "--assignment", "lstm",
                                     "--out", str(out), "--no-gradebook", "--jobs", "1", *flags]
    return subprocess.run(command, cwd=copy, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid sandbox needs root")
def test_uid_sandbox_refuses_readable_secrets_then_grades(config, tmp_path, repo_copy):
    """Without bubblewrap, as root: refused while uid 65534 can read the solutions; once they are
    closed, graded as uid 65534, an attacker reading them gets 1 point and the honest student 18."""
    copy = repo_copy
    root, out = tmp_path / "submitted", tmp_path / "out"
    write_submission(root, HONEST, "lstm", config.notebook, release(config, reference_cells()))
    cells, extra = stolen_answers(f"stolen = open({str(copy / 'solutions' / 'lstm.py')!r}).read()")
    write_submission(root, "a_reader", "lstm", config.notebook, release(config, cells, extra))
    os.chmod(root, 0o700)
    skip = {sandbox.SKIP_ENV: "bubblewrap"}
    refused = grade_in(copy, root, out, env=skip)
    assert refused.returncode == 2 and "uid 65534 can read" in refused.stderr and "chmod" in refused.stderr
    assert not (out / "grades.csv").exists()
    for name in ("solutions", "assignments", "source"):
        os.chmod(copy / name, 0o700)
    os.chmod(copy / "grading.yml", 0o600)
    done = grade_in(copy, root, out, env=skip)
    assert done.returncode == 0, done.stderr
    results = {p.stem: json.loads(p.read_text()) for p in (out / "results").glob("*.json")}
    assert {r["sandbox"] for r in results.values()} == {"uid"}
    assert results[HONEST]["score"] == config.max_score
    assert results["a_reader"]["score"] <= 1


def test_no_kernel_boundary_refuses_unless_unsandboxed(config, tmp_path):
    """With neither bubblewrap nor the uid available: exit 2 and a clear message; with
    --unsandboxed, a loud warning and every result marked "sandbox": "none"."""
    root, out = tmp_path / "submitted", tmp_path / "out"
    write_submission(root, HONEST, "lstm", config.notebook, release(config, reference_cells()))
    env = {**os.environ, sandbox.SKIP_ENV: "bubblewrap,uid"}
    args = ["-m", "autograder", "grade", str(root), "--assignment", "lstm", "--out", str(out), "--no-gradebook"]
    refused = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert refused.returncode == 2
    assert "no kernel-level sandbox" in refused.stderr and "--unsandboxed" in refused.stderr
    assert not (out / "grades.csv").exists()
    done = subprocess.run([sys.executable, *args, "--unsandboxed"], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "WARNING: grading WITHOUT a kernel sandbox" in done.stderr
    result = json.loads((out / "results" / f"{HONEST}.json").read_text())
    assert result["sandbox"] == "none" and result["score"] == config.max_score
