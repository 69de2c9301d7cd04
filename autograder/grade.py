"""Grading one submission, and a class of them in parallel."""
import concurrent.futures
import inspect
import multiprocessing
import os
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autograder import sandbox
from autograder.exercise import Context, ExerciseResult, grade_exercise
from autograder.impl import Crashed, LocalImpl, StudentImpl, TimedOut
from autograder.notebook import Unreadable, read_cells


@dataclass
class Grader:
    """Everything that is the same for every submission of one assignment: built once, before
    the worker processes fork, so each of them shares it."""
    config: object
    sandbox: str             # "bubblewrap" | "uid" | "none" (sandbox.MODES)
    misconceptions: list     # [(Misconception, namespace)]

    @classmethod
    def prepare(cls, config, sandbox_mode="auto", unsandboxed=False, protected=()):
        """The grader for `config`, in the sandbox mode sandbox.choose_mode picks (GraderError
        when none is allowed). `protected`: paths besides the repository's secrets that the
        "uid" mode's student must not read (the submissions, the outputs)."""
        from autograder.config import REPO   # not on Gradescope, which builds its Grader directly
        secrets = [REPO / name for name in ("solutions", "assignments", "source", ".git", "grading.yml")]
        mode = sandbox.choose_mode(sandbox_mode, unsandboxed, secrets + list(protected))
        source = inspect.getsource(config.reference)
        catalogue = getattr(config.module, "CATALOGUE", [])
        return cls(config, mode, [(m, m.namespace(source)) for m in catalogue])

    def rng(self, student_id, exercise_id):
        """The hidden inputs' generator: fixed by grading.yml's seed, the assignment, the student
        and the exercise, so regrading gives the same inputs and classmates get different ones."""
        words = (self.config.name, student_id, exercise_id)
        return np.random.default_rng([self.config.seed] + [zlib.crc32(w.encode()) for w in words])

    def grade(self, student_id, notebook_path):
        """One submission -> its result dict (results/<student>.json)."""
        config = self.config
        names = config.parameter_names()
        setting = Setting(config.name, config.notebook, config.points, config.skip_cell_tags, config.limits,
                          config.tolerance, config.input_modified_penalty, names, config.release_dir,
                          self.sandbox)
        graded = ((e, e.cases(self.rng(student_id, e.id))) for e in config.exercises)
        return grade_notebook(student_id, notebook_path, setting, graded,
                              LocalImpl(vars(config.reference), names),
                              [(m, LocalImpl(ns, names)) for m, ns in self.misconceptions])


@dataclass(frozen=True)
class Setting:
    """What grading a notebook needs besides the notebook and the implementations it is compared
    with: from grading.yml locally, from the zip's spec.json on Gradescope."""
    assignment: str
    notebook: str             # the file name students submit
    points: dict              # exercise id -> points, in notebook order
    skip_cell_tags: tuple
    limits: object            # wall_seconds, call_seconds, memory_mb
    tolerance: dict
    input_penalty: float      # share of an exercise lost for modifying an argument
    parameter_names: dict     # fn name -> argument names (for messages)
    support_dir: object       # copied next to the notebook in the student's scratch folder, or None
    sandbox: str              # "bubblewrap" | "uid" | "none"


def grade_notebook(student_id, notebook_path, setting, graded, reference, misconception_impls):
    """One notebook -> its result dict (results/<student>.json).

    graded: iterable of (Exercise, hidden cases), in notebook order; reference and
    misconception_impls ([(Misconception, Impl)]): what the judges compare with. Used by
    Grader.grade and, with recorded answers, by the Gradescope zip."""
    limits, started = setting.limits, time.monotonic()
    result = {"student_id": student_id, "assignment": setting.assignment, "status": "graded",
              "reason": None, "score": 0.0, "max_score": float(sum(setting.points.values())),
              "exercises": [], "cell_errors": [], "seconds": 0.0, "sandbox": setting.sandbox}
    try:
        if notebook_path is None:
            raise Unreadable(f"no {setting.notebook} found in the submission")
        cells = read_cells(Path(notebook_path), setting.skip_cell_tags)
    except Unreadable as exc:
        result.update(status="unreadable" if notebook_path else "missing", reason=str(exc))
        result["exercises"] = [ExerciseResult(e, 0.0, p, "missing", str(exc)).to_json()
                               for e, p in setting.points.items()]
        result["seconds"] = round(time.monotonic() - started, 3)
        return result

    def time_left():
        return limits.wall_seconds - (time.monotonic() - started)

    scratch = sandbox.make_scratch(setting.support_dir, setting.notebook)

    def start():
        process = sandbox.StudentProcess(scratch, limits, setting.sandbox)
        seconds = time_left()
        try:
            reply = process.request({"op": "run", "cells": cells, "cell_seconds": limits.call_seconds}, seconds)
        except sandbox.ChannelTimeout:
            raise TimedOut("notebook", f"its cells did not finish running within {seconds:.0f} s") from None
        except sandbox.ChannelClosed as exc:
            raise Crashed("notebook", f"{exc} while its cells were running") from None
        return process, reply

    student = StudentImpl(start, setting.parameter_names, limits.call_seconds, time_left)
    ctx = Context(student, reference, setting.tolerance, misconception_impls=misconception_impls)
    try:
        for exercise, cases in graded:
            outcome = grade_exercise(exercise, ctx, cases, setting.points[exercise.id], setting.input_penalty)
            ctx.results[exercise.id] = outcome
            result["exercises"].append(outcome.to_json())
            if student.run_reply and not result["cell_errors"]:
                result["cell_errors"] = [{"cell": i, "error": e} for i, e in student.run_reply["cell_errors"]]
    finally:
        student.close()
        shutil.rmtree(scratch, ignore_errors=True)
    result["score"] = round(sum(e["points"] for e in result["exercises"]), 4)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def find_submissions(root, assignment, notebook):
    """nbgrader layout ROOT/<student>/<assignment>/<notebook> -> sorted [(student, path or None)].

    Every student folder gets an entry; a missing notebook is None (graded as missing)."""
    found = []
    for student in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
        path = student / assignment / notebook
        found.append((student.name, path if path.is_file() else None))
    return found


_GRADER = None   # set in the parent before forking; read by the pool's workers


def _grade_one(item):
    return _GRADER.grade(*item)


def grade_all(grader, submissions, jobs=None, progress=None):
    """Grade submissions in parallel, `jobs` at a time (default: the number of cores).

    progress(result) is called as each finishes; returns results sorted by student id."""
    global _GRADER
    _GRADER = grader
    jobs = jobs or os.cpu_count() or 1
    results = []
    if jobs == 1:
        for item in submissions:
            results.append(_grade_one(item))
            progress and progress(results[-1])
    else:
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            for future in concurrent.futures.as_completed([pool.submit(_grade_one, s) for s in submissions]):
                results.append(future.result())
                progress and progress(results[-1])
    return sorted(results, key=lambda r: r["student_id"])
