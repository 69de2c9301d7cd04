"""The student owns its whole process (issue 19): attacks that assume so, graded through the CLI.

Each class run grades, in one run with two submissions at a time, an honest student, a classmate
graded at the same time as a killer, and attackers that use only what the kernel lets a process
do: sessions that would share a memfd on descriptor 0, a shared mapping or a file (a backward
pass that returns random arrays and promises them to the second-opinion session's forward pass),
the network (a server outside that hands out the reference), a detached grandchild that would
outlive the run, a swapped worker file, a classmate's worker killed through /proc and a pidfd.
The runs switch the audit hook off (a no-op guard.py in every scratch folder, as a notebook that
found a route past it would), so that what holds, holds because of the grader's own process and
the kernel: under bubblewrap, and in the "uid" mode of a Docker-like container, simulated here
(bubblewrap ruled out; the kernel's network namespace, tmpfs and cgroups refused through
sandbox.REFUSE_ENV). One run under bubblewrap keeps the hook on: the attacks that
need no system call it refuses (the memfd on descriptor 0) must fail there too.

Every attacker gets at most what it honestly implements, honest classmates full marks, the run
exits 0 with every row and feedback page, and nothing of it is alive afterwards.
"""
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from assignments.lstm.samples import reference_cells, release
from autograder.process import sandbox
from autograder.samples import write_submission
from tests.conftest import REPO
from tests.owned_process_notebooks import (WORKER_SWAP, classmate_killer, network_attack, outliving_attack,
                                           promise_attack)
from tests.test_sandbox_attacks import copy_repo, survivors

MARKER = "autograder-attack-marker"    # what survivors() looks for
NO_GUARD = '''
import sys
from autograder.process import sandbox
made = sandbox.make_scratch
def make_scratch(*args):
    scratch = made(*args)
    (scratch / "agent" / "guard.py").write_text(
        "Refused = PermissionError\\n"
        "def install(writable, readable):\\n    return (lambda fn, *args: fn(*args)), (lambda: None)\\n")
    return scratch
sandbox.make_scratch = make_scratch
from autograder.cli import main
sys.exit(main(sys.argv[1:]))
'''
BWRAP = pytest.mark.skipif(not sandbox.bubblewrap_works(), reason="bubblewrap does not work on this machine")
ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="the uid sandbox needs root")


class Server:
    """A TCP server on 127.0.0.1 that hands the reference's source to whoever connects, and
    counts them."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port, self.connections = self.socket.getsockname()[1], 0
        self.secret = (REPO / "solutions" / "lstm.py").read_bytes()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                client, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            with client:
                client.sendall(self.secret)

    def close(self):
        self.socket.close()


def class_of(config, root, out, port):
    """Writes the class -> {student: the points it honestly earns}."""
    honest = release(config, reference_cells())
    students = {"a0_killer": (release(config, *classmate_killer(4)), 1),
                "a1_victim": (honest, config.max_score),
                "o_network": (release(config, *network_attack(port)), 1),
                "o_outlive": (release(config, *outliving_attack(MARKER, out / "grades.csv")), config.max_score),
                "o_worker_swap": (release(config, reference_cells(), [WORKER_SWAP]), config.max_score),
                "zz_honest": (honest, config.max_score)}
    for store in ("fd0", "mapping", "tmp_file"):
        students[f"o_promise_{store}"] = (release(config, *promise_attack(store)), 9)
    for student, (notebook, _) in students.items():
        write_submission(root, student, "lstm", config.notebook, notebook)
    return {student: points for student, (_, points) in students.items()}


def grade(command, cwd, env):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900, env={**os.environ, **env})


RUNS = {   # name -> (guard on?, mode)
    "bubblewrap, guard on": (True, "bubblewrap"),
    "bubblewrap, guard off": (False, "bubblewrap"),
    "uid in a Docker-like container, guard off": (False, "uid"),
}


@pytest.fixture(scope="module", params=[pytest.param(name, marks=[BWRAP] if mode == "bubblewrap" else [ROOT])
                                        for name, (_, mode) in RUNS.items()])
def class_run(request, config, tmp_path_factory):
    guard, mode = RUNS[request.param]
    base = tmp_path_factory.mktemp("owned")
    root, out = base / "submitted", base / "out"
    server, copy = Server(), None
    try:
        honest_points = class_of(config, root, out, server.port)
        args = ["grade", str(root), "--assignment", "lstm", "--out", str(out), "--no-gradebook", "--jobs", "2",
                "--sandbox", mode]
        python = [sys.executable] + (["-m", "autograder"] if guard else ["-c", NO_GUARD])
        if mode == "uid":
            copy = copy_repo()
            for name in ("solutions", "assignments", "source"):
                os.chmod(copy / name, 0o700)
            os.chmod(copy / "grading.yml", 0o600)
            os.chmod(root, 0o700)
            done = grade(python + args, copy,
                         {sandbox.SKIP_ENV: "bubblewrap", sandbox.REFUSE_ENV: "netns,tmpfs,cgroup"})
        else:
            done = grade(python + args, REPO, {})
        grades_after_exit = (out / "grades.csv").read_text() if (out / "grades.csv").exists() else None
        time.sleep(5)                      # the detached grandchild would have rewritten grades.csv by now
        return mode, root, out, done, honest_points, grades_after_exit, server.connections
    finally:
        server.close()
        if copy is not None:
            shutil.rmtree(copy.parent)


def test_every_attacker_gets_at_most_its_honest_points(class_run):
    mode, root, out, done, honest_points, grades_after_exit, _ = class_run
    assert done.returncode == 0, done.stderr
    rows = {r["student_id"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert set(rows) == set(honest_points) == {p.name for p in root.iterdir()}
    assert all((out / "feedback" / f"{s}.html").is_file() for s in rows)
    for student, row in rows.items():
        result = json.loads((out / "results" / f"{student}.json").read_text())
        assert result["sandbox"] == mode
        assert float(row["total"]) <= honest_points[student], (student, row)
        if honest_points[student] == 18 and student != "o_worker_swap":   # honest classmates keep every point
            assert float(row["total"]) == 18, (student, row)
    assert (out / "grades.csv").read_text() == grades_after_exit


def test_the_second_opinion_meets_no_promise(class_run):
    """The promises' attackers implement the forward passes (9 points) and nothing else: the
    second-opinion session, a process of its own, finds none of the promises left for it."""
    *_, out, _, _, _, _ = class_run
    for store in ("fd0", "mapping", "tmp_file"):
        result = json.loads((out / "results" / f"o_promise_{store}.json").read_text())
        points = {e["id"]: e["points"] for e in result["exercises"]}
        assert points["lstm_step_backward"] == 0 and result["score"] == 9, (store, points)


def test_no_network_no_survivor_no_signal_to_a_classmate(class_run):
    mode, root, out, done, _, _, connections = class_run
    assert connections == 0
    assert not survivors()
    assert not [p for parent in sandbox.cgroup_parents().values() for p in parent.glob(sandbox.cgroup_prefix() + "*")]
    if mode == "uid":
        assert not [uid for uid in sandbox.UIDS if sandbox.processes_of(uid)]
    victim = json.loads((out / "results" / "a1_victim.json").read_text())
    assert victim["score"] == 18, victim["exercises"]


def test_the_docker_like_uid_mode_names_what_the_kernel_refused(class_run):
    mode, _, out, done, *_ = class_run
    refused = json.loads((out / "results" / "zz_honest.json").read_text())["sandbox_refused"]
    if mode == "uid":
        names = " ".join(refused)
        assert "network namespace" in names and "tmpfs" in names and "cgroup" in names, refused
        assert "Protections the kernel refused" in done.stdout
    else:
        assert not any("network" in r for r in refused)


def test_each_attack_was_stopped_in_the_students_own_cells(class_run):
    """The killer saw no worker it could kill, the network could not be reached (in the uid mode,
    without a network namespace: the seccomp filter refuses the socket), the worker file could
    not be written."""
    mode, _, out, *_ = class_run

    def errors(student):
        return " ".join(e["error"] for e in json.loads((out / "results" / f"{student}.json").read_text())["cell_errors"])
    assert "LookupError: no classmate to kill" in errors("a0_killer") or "Refused" in errors("a0_killer")
    assert any(word in errors("o_network") for word in ("Operation not permitted", "unreachable", "Refused"))
    if mode == "uid":
        assert "Operation not permitted" in errors("o_network"), errors("o_network")
    assert any(word in errors("o_worker_swap") for word in ("Permission denied", "Read-only", "Refused"))
