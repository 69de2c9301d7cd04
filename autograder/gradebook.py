"""Writing the grader's results into an nbgrader gradebook, the way `nbgrader autograde` would.

After grading, every student gets a submission in the course's gradebook.db:
- the assignment and its notebook are registered from the release notebook with nbgrader's
  own SaveCells preprocessor (the cells, points and checksums `generate_assignment` records);
- each readable submission is cleaned with nbgrader's own sanitising preprocessors
  (ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata: locked
  cells, points and metadata restored from the gradebook) and written to
  `autograded/<student>/<assignment>/<notebook>.ipynb`, where formgrader reads it;
- each public check cell `check_<exercise id>` gets, as its output, the grader's verdict and
  its points as the cell's result, recorded by nbgrader's SaveAutoGrades rule (nbgrader's own
  determine_grade and checksums, in one transaction: auto_score = our points, partial credit
  included); the scores are then set once more from our results, which are authoritative even
  where a student deleted a check cell;
- each answer cell of an exercise gets the grader's message as its automatic comment;
- the written answers (grading.yml `manual`) are left to nbgrader's rule: an answer the
  student did not touch scores 0 ("No response."), any other waits for a manual score in
  formgrader (needs_manual_grade). `nbgrader export` totals are auto + manual.

A missing or unreadable notebook still gets its submission, with every cell at 0 and nothing
waiting for a manual grade (what `nbgrader autograde` does for a missing notebook).
The course folder is the gradebook's folder: `autograded/` goes next to gradebook.db, and when
that folder is not already an nbgrader course (no nbgrader_config.py) one is written there.
"""
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

from autograder import report
from autograder.config import REPO

NO_RESPONSE = "No response."


def course_id(folder):
    """The course id of the nbgrader course in `folder` (else the repository's)."""
    from traitlets.config.loader import PyFileConfigLoader
    for where in (Path(folder), REPO):
        if (where / "nbgrader_config.py").is_file():
            config = PyFileConfigLoader("nbgrader_config.py", path=str(where)).load_config()
            if "course_id" in config.CourseDirectory:
                return config.CourseDirectory.course_id
    return "default_course"


def ensure_course(folder, course):
    """Make `folder` an nbgrader course directory when it is not one already."""
    path = Path(folder) / "nbgrader_config.py"
    if not path.exists():
        path.write_text(
            '"""An nbgrader course folder written by `python -m autograder` (gradebook and autograded/)."""\n'
            "c = get_config()  # noqa: F821\n"
            f"c.CourseDirectory.course_id = {course!r}\n"
            "# `nbgrader export` here must not overwrite the autograder's own grades.csv\n"
            'c.ExportPlugin.to = "nbgrader_grades.csv"\n')


def alembic_on_path():
    """nbgrader runs `alembic` (a console script of this environment) when it creates a database."""
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def open_gradebook(db_path, course):
    """nbgrader's Gradebook on db_path; a database nbgrader failed to create is removed again
    (a failed first run otherwise leaves a broken gradebook.db behind)."""
    from nbgrader.api import Gradebook
    alembic_on_path()
    db_path = Path(db_path)
    existed = db_path.exists()
    try:
        return Gradebook(f"sqlite:///{db_path.resolve()}", course)
    except Exception:
        if not existed and db_path.exists():
            db_path.unlink()
        raise


def register(gb_url, assignment, notebook_id, release_notebook):
    """Record the assignment, its notebook and its graded cells from the release notebook, with
    the preprocessor `nbgrader generate_assignment` uses (SaveCells)."""
    import nbformat
    from nbgrader.preprocessors import SaveCells
    nb = nbformat.read(str(release_notebook), as_version=4)
    resources = {"nbgrader": {"notebook": notebook_id, "assignment": assignment, "db_url": gb_url}}
    SaveCells().preprocess(nb, resources)


def verdict_outputs(exercise):
    """The outputs given to a check cell: the grader's verdict (stdout) and its points (the
    cell's result, which nbgrader reads as partial credit)."""
    import nbformat
    words = report.STATUS_WORDS.get(exercise["status"], exercise["status"])
    text = f"autograder: {words}, {report.fmt(exercise['points'])} / {report.fmt(exercise['max_points'])}\n"
    if exercise.get("message"):
        text += exercise["message"] + "\n"
    if exercise.get("misconception"):
        m = exercise["misconception"]
        text += f"Looks like a known mistake: {m['title']}. {m['hint']} (Section {m['section']})\n"
    return [nbformat.v4.new_output("stream", name="stdout", text=text),
            nbformat.v4.new_output("execute_result", data={"text/plain": report.fmt(exercise["points"])},
                                   execution_count=None)]


def comment_text(exercise):
    words = report.STATUS_WORDS.get(exercise["status"], exercise["status"])
    text = f"Autograder: {words} ({report.fmt(exercise['points'])} / {report.fmt(exercise['max_points'])})."
    if exercise.get("message"):
        text += " " + exercise["message"]
    if exercise.get("misconception"):
        m = exercise["misconception"]
        text += f" Looks like a known mistake: {m['title']}. {m['hint']} (Section {m['section']})"
    return text


def autograded_notebook(gb_url, assignment, notebook_id, student, path, result):
    """The submitted notebook through nbgrader's sanitising preprocessors, with the grader's
    verdicts as the check cells' outputs. Returns the notebook."""
    import nbformat
    from nbgrader.preprocessors import (CheckCellMetadata, ClearOutput, DeduplicateIds, OverwriteCells,
                                        OverwriteKernelspec)
    nb = nbformat.reads(Path(path).read_text(encoding="utf-8"), as_version=4)
    resources = {"nbgrader": {"notebook": notebook_id, "assignment": assignment, "student": student,
                              "db_url": gb_url}}
    for step in (ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata):
        nb, resources = step().preprocess(nb, resources)
    by_check = {f"check_{e['id']}": e for e in result["exercises"]}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and grade_id in by_check:
            cell.outputs = verdict_outputs(by_check[grade_id])
    return nb


def save_autogrades(gb, nb, assignment, notebook_id, student):
    """nbgrader's SaveAutoGrades rule, cell by cell, in one transaction (nbgrader's preprocessor
    commits after every cell): a grade cell's auto score from its outputs (a check cell's result
    is its points), or for a written answer 0 when untouched (same checksum) and None otherwise;
    needs_manual_grade when there is no auto score or a grader already gave a manual one."""
    from nbgrader import utils
    for cell in nb.cells:
        if not (utils.is_grade(cell) or utils.is_solution(cell) or utils.is_task(cell)):
            continue
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        if utils.is_grade(cell):
            grade = gb.find_grade(grade_id, notebook_id, assignment, student)
            grade.auto_score, _ = utils.determine_grade(cell)
            grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
        if utils.is_solution(cell) or utils.is_task(cell):
            comment = gb.find_comment(grade_id, notebook_id, assignment, student)
            untouched = cell.metadata.nbgrader.get("checksum") == utils.compute_checksum(cell)
            comment.auto_comment = NO_RESPONSE if untouched and not utils.is_task(cell) else None


def write(config, results, submissions, db_path, quiet=False):
    """Write every result into the gradebook at db_path (created when missing).

    results: the grader's result dicts; submissions: [(student, notebook path or None)].
    Returns the course folder (db_path's folder)."""
    with warnings.catch_warnings():
        # nbformat and SQLAlchemy warn about old notebooks and nbgrader's own session use
        warnings.simplefilter("ignore")
        return _write(config, results, submissions, db_path, quiet)


def _write(config, results, submissions, db_path, quiet):
    db_path = Path(db_path).resolve()
    folder = db_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    course = course_id(folder)
    ensure_course(folder, course)
    release = config.release_dir / config.notebook
    if not release.is_file():
        raise FileNotFoundError(f"{release} is missing: run `make release` first")
    notebook_id = Path(config.notebook).stem
    paths = dict(submissions)
    gb = open_gradebook(db_path, course)
    gb_url = f"sqlite:///{db_path}"
    with gb:
        gb.update_or_create_assignment(config.name)
        register(gb_url, config.name, notebook_id, release)
        grade_cells = {c.name for c in gb.find_notebook(notebook_id, config.name).grade_cells}
        missing_checks = sorted(f"check_{e}" for e in config.points if f"check_{e}" not in grade_cells)
        if missing_checks and not quiet:
            print(f"gradebook: the release notebook has no grade cell {', '.join(missing_checks)}; "
                  "those points are in grades.csv only", file=sys.stderr)
    with open_gradebook(db_path, course) as gb:
        for result in results:
            write_one(gb, gb_url, config, notebook_id, folder, result, paths.get(result["student_id"]), quiet)
    return folder


def write_one(gb, gb_url, config, notebook_id, folder, result, path, quiet):
    """One student's submission, autograded notebook, scores and comments."""
    import nbformat
    student = result["student_id"]
    gb.update_or_create_student(student)
    stamp = timestamp(path)
    gb.update_or_create_submission(config.name, student, **({"timestamp": stamp} if stamp else {}))
    gb.db.commit()
    target = folder / "autograded" / student / config.name / config.notebook
    nb = None
    if result["status"] == "graded" and path:
        try:
            nb = autograded_notebook(gb_url, config.name, notebook_id, student, path, result)
        except Exception as exc:   # nbgrader cannot read what our grader could: no notebook to show
            if not quiet:
                print(f"gradebook: {student}'s notebook cannot be shown in formgrader "
                      f"({type(exc).__name__}: {exc})", file=sys.stderr)
    if nb is not None:
        save_autogrades(gb, nb, config.name, notebook_id, student)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(target))
    elif target.parent.exists():
        shutil.rmtree(target.parent)
    record_scores(gb, config, notebook_id, student, result, shown=nb is not None)


def record_scores(gb, config, notebook_id, student, result, shown):
    """Our points as the check cells' auto scores; comments on the answer cells; for a notebook
    formgrader cannot show, every other grade cell at 0 (nbgrader's rule for a missing notebook)."""
    submission = gb.find_submission_notebook(notebook_id, config.name, student)
    by_cell = {f"check_{e['id']}": e for e in result["exercises"]}
    exercises = {e["id"]: e for e in result["exercises"]}
    for grade in submission.grades:
        name = grade.cell.name
        if name in by_cell:
            grade.auto_score = float(by_cell[name]["points"])
            grade.needs_manual_grade = grade.manual_score is not None
        elif not shown:
            grade.auto_score = 0.0
            grade.needs_manual_grade = grade.manual_score is not None
    for comment in submission.comments:
        name = comment.cell.name
        if name in exercises:
            comment.auto_comment = comment_text(exercises[name])
        elif not shown:
            comment.auto_comment = result.get("reason") or NO_RESPONSE
    gb.db.commit()


def timestamp(notebook_path):
    """nbgrader's submission timestamp (timestamp.txt next to the notebook), when there is one."""
    if notebook_path is None:
        return None
    stamp = Path(notebook_path).parent / "timestamp.txt"
    if stamp.is_file():
        text = stamp.read_text().strip()
        try:
            from nbgrader.utils import parse_utc
            parse_utc(text)
            return text
        except (ValueError, OverflowError):
            return None
    return None


def summary(db_path):
    """(submissions, answers waiting for a manual grade) in the gradebook, for the CLI's last lines."""
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{Path(db_path).resolve()}", course_id(Path(db_path).parent)) as gb:
        waiting = sum(1 for a in gb.assignments for s in a.submissions for n in s.notebooks
                      for g in n.grades if g.needs_manual_grade)
        count = sum(len(a.submissions) for a in gb.assignments)
    return count, waiting


def shown(path, start):
    """path relative to start when it lies inside start, else absolute."""
    relative = os.path.relpath(path, start)
    return str(path) if relative.startswith("..") else relative


def formgrader_hint(folder):
    """How to open formgrader on the course folder: the exact command, from the current folder."""
    folder, here = Path(folder).resolve(), Path.cwd().resolve()
    jupyter = Path(sys.executable).parent / "jupyter"
    where = shown(folder, here)
    if not jupyter.exists():
        command = "jupyter lab"
    elif where.startswith("/") or shown(jupyter, here).startswith("/"):
        command = f"{jupyter} lab"
    else:
        command = f"{os.path.relpath(jupyter, folder)} lab"
    prefix = "" if where == "." else f"cd {where} && "
    return f"{prefix}{command}   then Nbgrader > Formgrader (http://localhost:8888/formgrader)"


__all__ = ["write", "summary", "formgrader_hint", "course_id"]
