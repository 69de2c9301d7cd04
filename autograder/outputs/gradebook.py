"""Writing the grader's results into an nbgrader gradebook, the way `nbgrader autograde` would.

After grading, every student gets a submission in the course's gradebook.db:
- the assignment and its notebook are registered from the release notebook with nbgrader's
  own SaveCells preprocessor (the cells, points and checksums `generate_assignment` records);
- each readable submission is rebuilt on the release notebook's metadata (the notebook's, and
  each release cell's nbgrader flags, points, ids and checksums; none of the student's), its
  changed markdown shown only as safe text (student_text), then cleaned with nbgrader's own
  sanitising preprocessors (ClearOutput, DeduplicateIds, OverwriteCells, CheckCellMetadata:
  locked cells restored from the gradebook) and written to
  `autograded/<student>/<assignment>/<notebook>.ipynb`, where formgrader reads it;
- each public check cell `check_<exercise id>` gets, as its output, the grader's verdict, and
  as its auto score the grader's points (partial credit included, authoritative even where a
  student deleted a check cell);
- each answer cell of an exercise gets the grader's message as its automatic comment;
- the written answers (grading.yml `manual`) follow nbgrader's SaveAutoGrades rule (its own
  determine_grade and checksums): an answer the student did not touch scores 0 ("No
  response."), any other waits for a manual score in formgrader (needs_manual_grade);
- on a regrade, a manual score stays graded unless the answer changed since (compared with the
  autograded notebook formgrader showed), and a TA's override of an auto score that has since
  changed is flagged again; both are returned to the CLI, which names them;
- the submission time (timestamp.txt beside the submitted notebook) and grading.yml's due date
  go into the gradebook, the late penalty into nbgrader's late_submission_penalty (on auto +
  manual points), and timestamp.txt and submission_secret.txt into autograded/ (nbgrader's
  generate_feedback and release_feedback need them).
  `nbgrader export` totals are auto + manual - penalty.

A missing or unreadable notebook still gets its submission, with every cell at 0 and nothing
waiting for a manual grade (what `nbgrader autograde` does for a missing notebook), the check
cells excepted (the grader's points). So does one whose cells nbgrader cannot score, with the
reason as the written answers' comment: one notebook never stops the class's gradebook.
The course folder is the gradebook's folder: `autograded/` goes next to gradebook.db, and when
that folder is not already an nbgrader course (no nbgrader_config.py) one is written there.
"""
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

from autograder.outputs import late, report, scores, student_text
from autograder.config import REPO
from autograder.outputs.student_text import printable

NO_RESPONSE = "No response."


def course_id(folder):
    """The course id of the nbgrader course in `folder` (else the repository's), read from its
    nbgrader_config.py without running it: the file lies in a folder that TAs open in Jupyter,
    so its content is not trusted to be code of ours. Only a plain
    `c.CourseDirectory.course_id = "..."` line counts."""
    import ast
    for where in (Path(folder), REPO):
        path = where / "nbgrader_config.py"
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, SyntaxError):
            continue
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and ast.unparse(node.targets[0]) == "c.CourseDirectory.course_id"
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                return node.value.value
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


def alembic_head():
    """The alembic revision nbgrader stamps a new gradebook with, read in this process (nbgrader
    runs the `alembic` command for it: seconds, and it must be on PATH)."""
    import nbgrader
    from alembic.script import ScriptDirectory
    return ScriptDirectory(os.path.join(os.path.dirname(nbgrader.__file__), "alembic")).get_current_head()


def open_gradebook(db_path, course, fast_writes=False):
    """nbgrader's Gradebook on db_path; a database nbgrader failed to create is removed again
    (a failed first run otherwise leaves a broken gradebook.db behind). fast_writes: SQLite does
    not wait for the disk at each of nbgrader's commits (a crash of the machine, not of this
    process, could then lose the run; grading again restores it)."""
    from nbgrader import api
    from sqlalchemy import event
    db_path = Path(db_path)
    existed = db_path.exists()
    original, api.get_alembic_version = api.get_alembic_version, alembic_head
    try:
        gb = api.Gradebook(f"sqlite:///{db_path.resolve()}", course)
    except Exception:
        if not existed and db_path.exists():
            db_path.unlink()
        raise
    finally:
        api.get_alembic_version = original
    if fast_writes:
        gb.db.remove()
        gb.engine.dispose()
        event.listen(gb.engine, "connect", lambda connection, _: connection.execute("PRAGMA synchronous = OFF"))
    return gb


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
    return [nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": printable(text, newlines=True)}),
            nbformat.from_dict({"output_type": "execute_result", "metadata": {}, "execution_count": None,
                                "data": {"text/plain": report.fmt(exercise["points"])}})]


def comment_text(exercise):
    """The grader's words on one exercise, as the answer cell's automatic comment in formgrader."""
    words = report.STATUS_WORDS.get(exercise["status"], exercise["status"])
    text = f"Autograder: {words} ({report.fmt(exercise['points'])} / {report.fmt(exercise['max_points'])})."
    if exercise.get("message"):
        text += " " + exercise["message"]
    if exercise.get("misconception"):
        m = exercise["misconception"]
        text += f" Looks like a known mistake: {m['title']}. {m['hint']} (Section {m['section']})"
    return printable(text, newlines=True)


class ReleaseCells:
    """The release notebook's cells as the gradebook records them, read once per run. It
    answers the two questions nbgrader's OverwriteCells asks for every cell of every
    submission (find_source_cell, find_graded_cell) without a database query each, and
    knows each cell's name by its database id. It also holds the release notebook itself:
    its metadata, and its cells by grade id and by cell id, whose metadata every graded
    notebook carries."""

    def __init__(self, gb, notebook_id, assignment, release_notebook):
        from types import SimpleNamespace
        import nbformat
        release = nbformat.read(str(release_notebook), as_version=4)
        self.metadata, self.nbformat_minor = release.metadata, release.nbformat_minor
        self.by_grade_id = {c.metadata.nbgrader["grade_id"]: c for c in release.cells
                            if c.metadata.get("nbgrader", {}).get("grade_id")}
        self.by_cell_id = {c["id"]: c for c in release.cells if c.get("id")}
        notebook = gb.find_notebook(notebook_id, assignment)
        self.source = {c.name: SimpleNamespace(name=c.name, cell_type=c.cell_type, locked=c.locked,
                                               checksum=c.checksum, source=c.source) for c in notebook.source_cells}
        self.graded = {c.name: SimpleNamespace(name=c.name, max_score=c.max_score) for c in notebook.grade_cells}
        self.names = {c.id: c.name for c in [*notebook.grade_cells, *notebook.solution_cells, *notebook.task_cells]}

    def find_source_cell(self, name, notebook_id, assignment):
        from nbgrader.api import MissingEntry
        if name not in self.source:
            raise MissingEntry()
        return self.source[name]

    def find_graded_cell(self, name, notebook_id, assignment):
        from nbgrader.api import MissingEntry
        if name not in self.graded:
            raise MissingEntry()
        return self.graded[name]


def overwrite_cells(release_cells):
    """nbgrader's OverwriteCells, asking ReleaseCells instead of opening the gradebook per notebook."""
    from nbgrader.preprocessors import NbGraderPreprocessor, OverwriteCells

    class FromReleaseCells(OverwriteCells):
        def preprocess(self, nb, resources):
            self.notebook_id = resources["nbgrader"]["notebook"]
            self.assignment_id = resources["nbgrader"]["assignment"]
            self.gradebook = release_cells
            return NbGraderPreprocessor.preprocess(self, nb, resources)
    return FromReleaseCells()


@contextlib.contextmanager
def schema_checked_once():
    """nbgrader checks each cell's metadata with jsonschema.validate, which validates the schema
    itself again on every call; during this block the same check runs with a validator built
    once per schema (same verdicts, a fraction of the time)."""
    import jsonschema
    from nbgrader.nbgraderformat import common
    built = {}

    def validate(instance, schema):
        if id(schema) not in built:        # the schema is kept alive with it, so ids are not reused
            built[id(schema)] = schema, jsonschema.validators.validator_for(schema)(schema)
        built[id(schema)][1].validate(instance)
    original = common.jsonschema.validate
    common.jsonschema.validate = validate
    try:
        yield
    finally:
        common.jsonschema.validate = original


def source_text(cell):
    """A cell's source as one string, whatever the student's file holds there."""
    source = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(source, list):
        return "".join(part if isinstance(part, str) else "" for part in source)
    return source if isinstance(source, str) else ""


def release_cell(release_cells, cell):
    """The release's cell a submitted cell stands for (by nbgrader grade id, else by cell id), or None."""
    metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
    nbgrader = metadata.get("nbgrader") if isinstance(metadata.get("nbgrader"), dict) else {}
    grade_id, cell_id = nbgrader.get("grade_id"), cell.get("id")
    if isinstance(grade_id, str) and grade_id in release_cells.by_grade_id:
        return release_cells.by_grade_id[grade_id]
    if isinstance(cell_id, str) and cell_id in release_cells.by_cell_id:
        return release_cells.by_cell_id[cell_id]
    return None


def new_cell(kind, source):
    """A notebook cell of kind "code", "markdown" or "raw" with that source and nothing else
    (nbformat's new_*_cell, without validating each cell against the schema: a tenth of the time)."""
    import nbformat
    cell = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    return nbformat.from_dict(cell)


def release_shaped(release_cells, submitted):
    """The submitted notebook (a dict as read from JSON) rebuilt with the release's metadata.

    The notebook's metadata is the release's. A cell that stands for a release cell gets that
    cell's type, metadata (nbgrader's flags, points, grade id and checksum included) and id;
    any other cell gets no metadata at all. Of the student's cells only the source is kept (and
    a markdown cell's raster-image attachments; a cell as the release has it keeps the release's
    attachments, the chapter's diagrams): jupytext pairing, widget state, outputs and unknown
    keys are gone. A markdown cell whose source differs from its release cell's, and
    any raw or unknown cell (which nbconvert would emit as raw HTML), is shown through
    student_text.safe_markdown."""
    import copy
    import nbformat
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(release_cells.metadata))
    nb.nbformat_minor = release_cells.nbformat_minor
    used_ids = set()
    cells = submitted.get("cells") if isinstance(submitted, dict) else None
    for index, cell in enumerate(cells if isinstance(cells, list) else []):
        if not isinstance(cell, dict):
            continue
        source, original = source_text(cell), release_cell(release_cells, cell)
        kind = original.cell_type if original is not None else cell.get("cell_type")
        unchanged = original is not None and source == source_text(original)
        if kind == "code":
            new = new_cell("code", source)
        elif unchanged:
            new = new_cell("markdown" if kind == "markdown" else "raw", source)
            if kind == "markdown" and original.get("attachments"):   # the release's own pictures
                new.attachments = copy.deepcopy(original.attachments)
        elif kind == "markdown":
            new = new_cell("markdown", student_text.safe_markdown(source))
            attachments = student_text.safe_attachments(cell.get("attachments"))
            if attachments:
                new.attachments = attachments
        else:      # a raw or unknown cell: nbconvert would put a raw cell's text into the page as it is
            new = new_cell("markdown", student_text.verbatim(source))
        if original is not None and original.get("id") not in used_ids:
            new.metadata = copy.deepcopy(original.metadata)
            new.id = original["id"]
        else:
            new.id = f"submitted-{index}"
        used_ids.add(new.id)
        if nb.nbformat_minor < 5:
            del new["id"]
        nb.cells.append(new)
    return nb


def autograded_notebook(release_cells, assignment, notebook_id, student, path, result):
    """The submitted notebook rebuilt on the release's metadata (release_shaped), then through
    nbgrader's sanitising preprocessors, with the grader's verdicts as the check cells' outputs."""
    from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, DeduplicateIds
    nb = release_shaped(release_cells, json.loads(Path(path).read_text(encoding="utf-8")))
    resources = {"nbgrader": {"notebook": notebook_id, "assignment": assignment, "student": student}}
    for step in (ClearOutput(), DeduplicateIds(), overwrite_cells(release_cells), CheckCellMetadata()):
        nb, resources = step.preprocess(nb, resources)
    by_check = {f"check_{e['id']}": e for e in result["exercises"]}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and grade_id in by_check:
            cell.outputs = verdict_outputs(by_check[grade_id])
    return nb


def answers(nb):
    """grade_id -> source of every answer cell (solution or task) of a notebook dict."""
    found = {}
    for cell in nb.get("cells", []) if nb else []:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") or meta.get("task"):
            source = cell.get("source", "")
            found[meta.get("grade_id")] = "".join(source) if isinstance(source, list) else source
    return found


def previous_answers(target):
    """The answers formgrader showed last time (the autograded notebook before this run)."""
    try:
        return answers(json.loads(Path(target).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def record(gb, release_cells, config, notebook_id, student, result, nb, previous):
    """Scores and comments of one submission; returns what a TA should look at again.

    Check cells get our points. A written answer follows nbgrader's rule (untouched: 0 and
    "No response."; else waiting for a manual grade), except that a manual score already given
    stays graded unless the answer changed since. A TA's override of an auto-graded cell whose
    auto score has since changed is flagged (needs_manual_grade) and reported. For a notebook
    formgrader cannot show, every other grade cell is 0 (nbgrader's rule for a missing notebook)."""
    from nbgrader import utils
    submission = gb.find_submission_notebook(notebook_id, config.name, student)
    exercises = {e["id"]: e for e in result["exercises"]}
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in (nb.cells if nb else [])
             if utils.is_grade(c) or utils.is_solution(c) or utils.is_task(c)}
    now = answers(nb) if nb else {}
    flags = []
    for grade in submission.grades:
        name = release_cells.names[grade.cell_id]
        exercise = exercises.get(name.removeprefix("check_")) if name.startswith("check_") else None
        if exercise is not None or name not in cells:
            new = float(exercise["points"]) if exercise is not None else 0.0
            stale = grade.manual_score is not None and grade.auto_score is not None and grade.auto_score != new
            if stale:
                flags.append((student, name, f"your override {report.fmt(grade.manual_score)} was given when the "
                              f"auto score was {report.fmt(grade.auto_score)}; it is now {report.fmt(new)}"))
            grade.auto_score = new
            grade.needs_manual_grade = stale
            continue
        grade.auto_score, _ = utils.determine_grade(cells[name])
        if grade.manual_score is None:
            grade.needs_manual_grade = grade.auto_score is None
        else:
            changed = previous.get(name) != now.get(name)
            if changed:
                flags.append((student, name, "the answer changed since it was graded by hand"))
            grade.needs_manual_grade = changed
    for comment in submission.comments:
        name = release_cells.names[comment.cell_id]
        if name in exercises:
            comment.auto_comment = comment_text(exercises[name])
        elif name not in cells:
            comment.auto_comment = result.get("reason") or NO_RESPONSE
        else:
            untouched = cells[name].metadata.nbgrader.get("checksum") == utils.compute_checksum(cells[name])
            comment.auto_comment = NO_RESPONSE if untouched and not utils.is_task(cells[name]) else None
    return submission, flags


def write(config, results, submissions, db_path, quiet=False, progress=None, staged=None, names=None):
    """Write every result into the gradebook at db_path (created when missing).

    results: the grader's result dicts; submissions: [(student, notebook path or None)];
    progress(student) is called after each; staged: a folder that receives the autograded
    notebooks (`<student>/<assignment>/`) instead of the course's autograded/ (the CLI moves
    them there when the run is complete; answers changed since are still compared with the
    course's); names: {student: {first_name, last_name, email}} from the roster, shown by
    formgrader. Returns (the course folder, which is db_path's folder, and [(student, cell,
    why)] of manual grades a TA should look at again)."""
    with warnings.catch_warnings():
        # nbformat and SQLAlchemy warn about old notebooks and nbgrader's own session use
        warnings.simplefilter("ignore")
        return _write(config, results, submissions, db_path, quiet, progress, staged, names or {})


def _write(config, results, submissions, db_path, quiet, progress, staged, names):
    from sqlalchemy.exc import SQLAlchemyError
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
    due = config.late.due.replace(tzinfo=None) if config.late else None
    with gb:
        gb.update_or_create_assignment(config.name, duedate=due)
        register(gb_url, config.name, notebook_id, release)
        grade_cells = {c.name for c in gb.find_notebook(notebook_id, config.name).grade_cells}
        missing_checks = sorted(f"check_{e}" for e in config.points if f"check_{e}" not in grade_cells)
        if missing_checks and not quiet:
            print(f"gradebook: the release notebook has no grade cell {', '.join(missing_checks)}; "
                  "those points are in grades.csv only", file=sys.stderr)
    flags = []
    with open_gradebook(db_path, course, fast_writes=True) as gb, schema_checked_once():
        release_cells = ReleaseCells(gb, notebook_id, config.name, release)
        work = [(result, paths.get(result["student_id"])) for result in results]
        shown = prepared(release_cells, config.name, notebook_id, work)
        for (result, path), (nb, problem) in zip(work, shown):
            if problem and not quiet:
                print(f"gradebook: {printable(result['student_id'])}'s notebook cannot be shown in formgrader "
                      f"({printable(problem)})", file=sys.stderr)
            if result["student_id"] in names:
                gb.update_or_create_student(result["student_id"], **names[result["student_id"]])
            try:
                flags += write_one(gb, release_cells, config, notebook_id, folder, result, path, nb, staged)
            except SQLAlchemyError:
                raise
            except Exception as exc:    # nbgrader could not score this notebook's cells: as if it had none
                why = (f"nbgrader could not score this notebook's cells ({printable(type(exc).__name__)}: "
                       f"{printable(exc)}): its written answers are to be read in the submitted notebook")
                if not quiet:
                    print(f"gradebook: {printable(result['student_id'])}: {why}", file=sys.stderr)
                flags += write_one(gb, release_cells, config, notebook_id, folder, {**result, "reason": why}, path,
                                   None, staged)
            progress and progress(result["student_id"])
        gb.db.commit()
    return folder, flags


_PREPARING = None   # (release_cells, assignment, notebook_id), set before the pool forks


def _prepare_one(item):
    """(result, path) -> (autograded notebook or None, why it could not be made or None)."""
    release_cells, assignment, notebook_id = _PREPARING
    result, path = item
    if result["status"] != "graded" or not path:
        return None, None
    try:
        return autograded_notebook(release_cells, assignment, notebook_id, result["student_id"], path, result), None
    except Exception as exc:   # nbgrader cannot read what our grader could: no notebook to show
        return None, f"{type(exc).__name__}: {exc}"


def prepared(release_cells, assignment, notebook_id, work):
    """The autograded notebooks of `work`, in order, made by every core while this process
    writes the database (sanitising notebooks is about half the phase's time)."""
    global _PREPARING
    _PREPARING = (release_cells, assignment, notebook_id)
    student_text.is_safe_markdown("")      # nbconvert's parser built once, before the workers fork
    jobs = min(os.cpu_count() or 1, max(1, len(work) // 8))
    if jobs == 1:
        yield from map(_prepare_one, work)
        return
    from autograder.grade import as_completed, quiet_worker, stop_pool
    context = multiprocessing.get_context("fork")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=quiet_worker)
    try:
        for future in [pool.submit(_prepare_one, item) for item in work]:
            yield next(as_completed([future])).result()     # in order; an interrupt is seen while waiting
    except BaseException:   # an interrupt (or the generator closed early): end the pool now
        stop_pool(pool)
        raise
    pool.shutdown()


def write_one(gb, release_cells, config, notebook_id, folder, result, path, nb, staged=None):
    """One student's submission, autograded notebook nb (or None), scores, comments and late penalty
    (the notebook written under `staged` when given, see write())."""
    student = result["student_id"]
    submitted = late.read_timestamp(path.parent) if path else None
    gb.update_or_create_student(student)
    gb.update_or_create_submission(config.name, student,
                                   timestamp=submitted.replace(tzinfo=None) if submitted else None)
    target = folder / "autograded" / student / config.name / config.notebook
    previous = previous_answers(target)
    submission, flags = record(gb, release_cells, config, notebook_id, student, result, nb, previous)
    submission.late_submission_penalty = (
        config.late.penalty(submitted, scores.notebook_score(submission), config.full_points) if config.late else 0.0)
    if nb is not None:
        written = target if staged is None else Path(staged) / student / config.name / config.notebook
        written.parent.mkdir(parents=True, exist_ok=True)
        written.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        for kept in ("submission_secret.txt", late.TIMESTAMP_FILE):   # the secret and first time stay
            if written != target and (target.parent / kept).is_file():
                shutil.copy2(target.parent / kept, written.parent)
        write_feedback_files(written.parent, submitted)
    elif staged is None and target.parent.exists():
        shutil.rmtree(target.parent)
    return flags


def write_feedback_files(folder, submitted):
    """What nbgrader's generate_feedback and release_feedback need beside an autograded notebook:
    timestamp.txt (the submission time, else the first grading time) and submission_secret.txt
    (written by nbgrader's exchange at submit time; an LMS download has none, so one is made
    once, as nbgrader makes it)."""
    stamp = folder / late.TIMESTAMP_FILE
    if submitted is not None:
        stamp.write_text(late.format_time(submitted) + "\n")
    elif not stamp.exists():
        stamp.write_text(late.format_time(datetime.now(timezone.utc)) + "\n")
    secret = folder / "submission_secret.txt"
    if not secret.exists():
        secret.write_text(os.urandom(64).hex())


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


JUPYTER_CONFIG = REPO / "jupyter_server_config.json"   # the course's Content-Security-Policy (README)


def formgrader_hint(folder):
    """How to open formgrader on the course folder: the exact command, from the current folder,
    with the course's Jupyter config (its Content-Security-Policy)."""
    folder, here = Path(folder).resolve(), Path.cwd().resolve()
    jupyter = Path(sys.executable).parent / "jupyter"
    where = shown(folder, here)
    absolute = where.startswith("/") or shown(jupyter, here).startswith("/")
    if not jupyter.exists():
        command = "jupyter lab"
    elif absolute:
        command = f"{jupyter} lab"
    else:
        command = f"{os.path.relpath(jupyter, folder)} lab"
    command += f" --config={JUPYTER_CONFIG if absolute else os.path.relpath(JUPYTER_CONFIG, folder)}"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command += " --allow-root"      # Jupyter refuses to start as root without it
    prefix = "" if where == "." else f"cd {where} && "
    return f"{prefix}{command}   then Nbgrader > Formgrader (http://localhost:8888/formgrader)"


__all__ = ["write", "summary", "formgrader_hint", "course_id"]
