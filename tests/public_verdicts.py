"""The public checks' verdicts on a notebook, as a student running it in Jupyter would see them.

`verdicts(notebooks)` runs each notebook (a dict, as autograder.samples builds them) in a
process of its own (this file run as a script), where the release's `seqlab` package is
importable, as in the release folder (the venv's editable install of the repository is too:
the notebooks compared here are the project's own). Its code cells run in order, in one
namespace that is `__main__` (as in a kernel), except those the grader skips (tagged demo).
Each check cell (nbgrader test cell `check_<exercise>`) runs in a forked child, with a time
limit, so that a check that hangs, exits or crashes costs only its own verdict. A check passes
when its cell raises nothing. The process's address space is limited (a notebook may allocate
without bound), and a cell that hangs is interrupted.

Returns {student id: {exercise id: (passed, what the cell printed or raised)}}; an exercise whose
check cell never ran to a verdict (the process died) is missing, which counts as failing.
"""
import concurrent.futures
import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import tempfile
import traceback
import types
from pathlib import Path

SKIP_TAGS = {"demo"}
CELL_SECONDS = 5           # a top-level cell that runs longer is interrupted (the grader stops it too)
CHECK_SECONDS = 10         # a check cell that runs longer fails
MEMORY_BYTES = 3 * 2**30   # address space of the process (numpy needs about 0.5 GiB of it)
PREFIX = "check_"


def verdicts(notebooks, release_dir, jobs=2):
    """{student id: notebook dict} -> {student id: {exercise id: (passed, text)}}."""
    with tempfile.TemporaryDirectory(prefix="public-verdicts-") as tmp, \
            concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {sid: pool.submit(_run_one, nb, Path(tmp) / f"{k}.ipynb", release_dir)
                   for k, (sid, nb) in enumerate(notebooks.items())}
        return {sid: future.result() for sid, future in futures.items()}


def _run_one(notebook, path, release_dir):
    path.write_text(json.dumps(notebook))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": str(release_dir)}
    done = subprocess.run([sys.executable, __file__, str(path)], cwd=path.parent, env=env,
                          capture_output=True, timeout=600)
    found = {}
    for line in done.stdout.decode(errors="replace").splitlines():
        if line.startswith("VERDICT "):
            exercise, passed, text = json.loads(line[len("VERDICT "):])
            found[exercise] = (passed, text)
    return found


# ---------------------------------------------------------------- the child process

def _check_exercise(cell):
    grading = cell.get("metadata", {}).get("nbgrader", {})
    if grading.get("grade") is True and not grading.get("solution"):
        grade_id = grading.get("grade_id", "")
        return grade_id[len(PREFIX):] if grade_id.startswith(PREFIX) else None
    return None


class _CellTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _CellTimeout()


def _run_check(source, namespace):
    """Fork; the child runs the check cell and pipes back (passed, text)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        out = tempfile.TemporaryFile("w+")
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        sys.stdout = sys.stderr = out
        try:
            exec(compile(source, "<check cell>", "exec"), namespace)
            passed, error = True, ""
        except BaseException as exc:   # noqa: BLE001 - whatever the cell raised fails it
            passed, error = False, "".join(traceback.format_exception_only(type(exc), exc))
        sys.stdout.flush()
        sys.stderr.flush()
        out.seek(0)
        os.write(write_end, pickle.dumps((passed, out.read() + error)))
        os._exit(0)
    os.close(write_end)
    signal.alarm(CHECK_SECONDS)
    chunks = []
    try:
        while chunk := os.read(read_end, 1 << 16):
            chunks.append(chunk)
    except _CellTimeout:
        os.kill(pid, signal.SIGKILL)
        chunks = [pickle.dumps((False, f"the check cell ran longer than {CHECK_SECONDS} s"))]
    finally:
        signal.alarm(0)
        os.close(read_end)
        os.waitpid(pid, 0)
    data = b"".join(chunks)
    return pickle.loads(data) if data else (False, "the check cell's process died")


def main(path):
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    signal.signal(signal.SIGALRM, _alarm)
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    namespace = module.__dict__
    report = sys.__stdout__
    for cell in json.loads(Path(path).read_text())["cells"]:
        if cell.get("cell_type") != "code" or SKIP_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        exercise = _check_exercise(cell)
        if exercise:
            passed, text = _run_check(source, namespace)
            report.write("VERDICT " + json.dumps([exercise, passed, text[-2000:]]) + "\n")
            report.flush()
            continue
        signal.alarm(CELL_SECONDS)
        try:
            exec(compile(source, "<cell>", "exec"), namespace)
        except BaseException:   # noqa: BLE001 - the notebook goes on, as the grader's run does
            pass
        finally:
            signal.alarm(0)


if __name__ == "__main__":
    sys.path.remove(os.path.dirname(os.path.abspath(__file__)))   # the tests are not the student's
    sys.stdout = open(os.devnull, "w")     # what the cells print stays out of the verdicts
    main(sys.argv[1])
