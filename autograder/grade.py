"""Grading one submission, and a class of them in parallel."""
import concurrent.futures
import contextlib
import hashlib
import inspect
import json
import multiprocessing
import os
import shutil
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autograder.process import sandbox, upcall_cost
from autograder.process.channel import ForkServer
from autograder.judging.exercise import Context, ExerciseResult, grade_exercise
from autograder.process.impl import LocalImpl, StudentImpl
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

    def rng(self, student_id, exercise_id, digest=""):
        """The hidden inputs' generator: fixed by grading.yml's seed, the assignment, the student,
        the exercise and the submitted notebook's content (its sha256 `digest`), so regrading the
        same notebook gives the same inputs, classmates get different ones, and a changed notebook
        meets new ones (nothing harvested from one attempt answers the next)."""
        words = (str(self.config.seed), self.config.name, student_id, exercise_id, digest)
        entropy = hashlib.sha256(json.dumps(words).encode()).digest()   # every bit of every word, unambiguously
        return np.random.default_rng(int.from_bytes(entropy, "big"))

    def grade(self, student_id, notebook_path):
        """One submission -> its result dict (results/<student>.json). Never raises: whatever
        goes wrong becomes this submission's zero with a reason."""
        try:
            config = self.config
            names = config.parameter_names()
            setting = Setting(config.name, config.notebook, config.points, config.skip_cell_tags, config.limits,
                              config.tolerance, config.input_modified_penalty, names, config.release_dir,
                              self.sandbox)
            digest = notebook_digest(notebook_path)
            graded = ((e, e.cases(self.rng(student_id, e.id, digest))) for e in config.exercises)
            return grade_notebook(student_id, notebook_path, setting, graded,
                                  LocalImpl(vars(config.reference), names, watch_inputs=False),
                                  [(m, LocalImpl(ns, names)) for m, ns in self.misconceptions])
        except sandbox.GraderError:
            raise                  # the machine cannot run student processes at all: stop the run
        except Exception as exc:   # the grader's own failure on this submission: its row says so
            return {**failed_result(student_id, self.config, exc), "sandbox": self.sandbox}


@dataclass(frozen=True)
class Setting:
    """What grading a notebook needs besides the notebook and the implementations it is compared
    with, from grading.yml (locally and in the Gradescope zip)."""
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


def notebook_digest(path):
    """sha256 of the submitted file ("" when there is none or it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""
    except OSError:
        return ""


def failed_result(student_id, config, exc):
    """The row of a submission the grader itself failed on: zero, and the reason for the TA."""
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    reason = (f"the grader failed on this submission ({type(exc).__name__}"
              f"{f' in {Path(where.filename).name}:{where.lineno}' if where else ''}); "
              "a TA should look at it")
    return {"student_id": student_id, "assignment": config.name, "status": "error", "reason": reason,
            "score": 0.0, "max_score": float(sum(config.points.values())), "cell_errors": [], "seconds": 0.0,
            "exercises": [ExerciseResult(e, 0.0, p, "error", "not graded: " + reason).to_json()
                          for e, p in config.points.items()]}


def grade_notebook(student_id, notebook_path, setting, graded, reference, misconception_impls):
    """One notebook -> its result dict (results/<student>.json).

    graded: iterable of (Exercise, hidden cases), in notebook order; reference and
    misconception_impls ([(Misconception, Impl)]): what the judges compare with (Grader.grade,
    locally and in the Gradescope zip)."""
    limits, started = setting.limits, time.monotonic()
    result = {"student_id": student_id, "assignment": setting.assignment, "status": "graded",
              "reason": None, "score": 0.0, "max_score": float(sum(setting.points.values())),
              "exercises": [], "cell_errors": [], "seconds": 0.0, "sandbox": setting.sandbox,
              "sandbox_refused": sandbox.refused_protections(setting.sandbox)}
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
    student = StudentImpl(lambda seconds: ForkServer(scratch, limits, setting.sandbox, cells, seconds),
                          setting.parameter_names, limits, time_left,
                          lambda: upcall_cost.measured(scratch, limits, setting.sandbox))
    ctx = Context(student, reference, setting.tolerance, limits, misconception_impls=misconception_impls)
    try:
        for exercise, cases in graded:
            outcome = grade_exercise(exercise, ctx, cases, setting.points[exercise.id], setting.input_penalty)
            ctx.results[exercise.id] = outcome
            result["exercises"].append(outcome.to_json())
            if student.run_reply and not result["cell_errors"]:
                result["cell_errors"] = [{"cell": i, "error": f"{kind}: {message}" if message else kind,
                                          "line": line} for i, kind, message, line in student.run_reply["cell_errors"]]
    finally:
        student.close()
        shutil.rmtree(scratch, ignore_errors=True)
    result["score"] = round(sum(e["points"] for e in result["exercises"]), 4)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def find_submissions(root, assignment, notebook):
    """nbgrader layout ROOT/<student>/<assignment>/<notebook> -> sorted [(student, path or None)]:
    autograder.layout.find_submissions, imported here on use (the Gradescope zip ships this
    module without layout.py)."""
    from autograder.layout import find_submissions as find
    return find(root, assignment, notebook)


_GRADER = None   # set in the parent before forking; read by the pool's workers
_BUSY = False    # a pool worker is grading a submission (its student's process may be running)


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM reached the grader. A BaseException, so that no `except Exception` of
    the grading stops it, and every `finally` on the way out (a student's process and its cgroup
    killed, a staged output discarded) runs."""


_HOLDING = {"on": False, "pending": None}   # held(): a signal that arrived is kept here


@contextlib.contextmanager
def interruptible():
    """During the block, SIGINT (Ctrl-C) and SIGTERM raise Interrupted in this process (the CLI's
    main thread), wherever it stands, except inside held()."""
    def stop(signum, frame):
        if _HOLDING["on"]:
            _HOLDING["pending"] = signal.Signals(signum).name
        else:
            raise Interrupted(signal.Signals(signum).name)
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def held():
    """Inside interruptible(): a signal arriving during the block (the commit of a run's outputs)
    waits for its end, then raises Interrupted."""
    _HOLDING.update(on=True, pending=None)
    try:
        yield
    finally:
        _HOLDING["on"] = False
    if _HOLDING["pending"]:
        raise Interrupted(_HOLDING["pending"])


def quiet_worker():
    """Initializer of a pool worker that holds no student process: Ctrl-C at the terminal reaches
    the whole process group, and the parent alone decides what it means (it ends the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _grading_worker():
    """Initializer of a grading worker: SIGINT is the parent's to handle; the parent's SIGTERM
    ends the submission in hand (Interrupted unwinds through its `finally`, which kills the
    student's process) and then the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_stop)


def _worker_stop(signum, frame):
    """A grading worker's SIGTERM handler: unwind the submission in hand, or leave when idle."""
    if _BUSY:
        raise Interrupted("SIGTERM")
    os._exit(1)


def _grade_one(item):
    """One submission in a pool worker; an interrupt ends the worker once its student is gone."""
    global _BUSY
    _BUSY = True
    try:
        return _GRADER.grade(*item)
    except Interrupted:
        os._exit(1)       # the student's process is gone; nothing of this worker is wanted any more
    finally:
        _BUSY = False


def as_completed(futures, poll=0.2):
    """concurrent.futures.as_completed, waking every `poll` seconds: a signal another thread of
    this process received runs its handler (an interrupt) within that time, not after the next
    result."""
    pending = set(futures)
    while pending:
        finished, pending = concurrent.futures.wait(pending, timeout=poll,
                                                    return_when=concurrent.futures.FIRST_COMPLETED)
        yield from finished


def stop_pool(pool, grace=10.0):
    """End a ProcessPoolExecutor now: cancel what it has not started, SIGTERM each worker (a
    grading worker then kills its student's process), SIGKILL those still there after `grace`
    seconds. (shutdown() alone waits for every queued job.)"""
    processes = list((pool._processes or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def grade_all(grader, submissions, jobs=None, progress=None):
    """Grade submissions in parallel, `jobs` at a time (default: the number of cores).

    progress(result) is called as each finishes; returns results sorted by student id. A
    grading process that dies (the machine killed it) costs only the submissions it held: they
    get a row saying so, and the others are graded in a new pool. Any BaseException here (the
    CLI's Interrupted) stops the pool at once, workers and student processes included."""
    global _GRADER
    _GRADER = grader
    jobs = jobs or os.cpu_count() or 1
    results, todo = [], list(submissions)

    def done(result):
        results.append(result)
        progress and progress(result)
    if jobs == 1:
        for item in todo:
            done(grader.grade(*item))
        return sorted(results, key=lambda r: r["student_id"])
    context = multiprocessing.get_context("fork")
    broken = []
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_grading_worker)
    try:
        futures = {pool.submit(_grade_one, item): item for item in todo}
        for future in as_completed(futures):
            try:
                done(future.result())
            except concurrent.futures.process.BrokenProcessPool:
                broken.append(futures[future])
            except sandbox.GraderError:
                raise
            except Exception as exc:
                done(failed_result(futures[future][0], grader.config, exc))
        pool.shutdown()
        for item in broken:   # each alone now, so that only the one that kills its process loses
            pool = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context,
                                                          initializer=_grading_worker)
            try:
                done(next(as_completed([pool.submit(_grade_one, item)])).result())
            except concurrent.futures.process.BrokenProcessPool:
                done(failed_result(item[0], grader.config, RuntimeError("the grading process was killed")))
            pool.shutdown()
    except BaseException:
        stop_pool(pool)
        raise
    return sorted(results, key=lambda r: r["student_id"])
