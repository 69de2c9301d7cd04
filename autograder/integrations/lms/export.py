"""`python -m autograder export --format canvas|moodle|csv`: final grades (auto-graded +
manual - late penalty, from the gradebook) as a file an LMS imports (CONTRACT section 4).

- canvas: Canvas's gradebook import CSV (Grades > Import): `Student`, `ID`, `SIS User ID`,
  `SIS Login ID`, `Section`, then one column for the assignment, holding points, after a
  "Points Possible" row as in Canvas's own export. `ID` is the Canvas user id (the student id
  `collect` took from the download). The assignment column is `--column`, else the roster's
  column for the assignment (canvas_column: Canvas then updates that assignment), else the
  assignment's name (Canvas then creates a new assignment).
- moodle: Moodle's offline grading worksheet (Assignment > "Upload grading worksheet", with the
  assignment's "Offline grading worksheet" feedback type on): `Identifier` ("Participant
  <participant id>", the id `collect` took from the download), `Full name`, `Email address`,
  `Grade`, `Maximum Grade`, `Feedback comments`.
- csv: one row per student: every exercise, every written question, late_penalty (negative),
  total, max_score.

With a roster every enrolled student gets a row (0 when nothing was submitted); without one,
every student in the gradebook. Every cell goes through tables.safe (no CSV injection).
"""
import re
from pathlib import Path

from autograder.outputs import report
from autograder.integrations.lms.roster import RosterError, Student, header
from autograder.outputs.tables import write_csv

FORMATS = ("canvas", "moodle", "csv")


def students(finals, roster):
    """Roster order (and names) when there is a roster, else the gradebook's students sorted."""
    if roster is None:
        return [Student(s) for s in sorted(finals)]
    return list(roster) + [Student(s) for s in sorted(set(finals) - {r.id for r in roster})]


def canvas_column(config, roster_path=None, column=None):
    """The Canvas column of the assignment: `column` when given; else the roster's column whose
    name ends in the assignment's Canvas id (grading.yml `canvas_id`: "Chapter 3: LSTM (48213)"),
    or without an id the one column named after the assignment with an id ("lstm (12345)");
    else the assignment's name (Canvas then creates a new assignment). RosterError when the
    roster lacks the id's column or has several candidates."""
    if column:
        return column
    if not roster_path:
        return config.name
    names = header(roster_path)
    if config.canvas_id:
        found = [n for n in names if n.rstrip().endswith(f"({config.canvas_id})")]
        if not found:
            raise RosterError(f"the roster {roster_path} has no column for the assignment's Canvas id "
                              f"{config.canvas_id} (grading.yml canvas_id): is it this course's gradebook export? "
                              "Name the column with --column")
        return found[0]
    found = [n for n in names if re.fullmatch(rf".*\b{re.escape(config.name)}\b.*\(\d+\)\s*", n, re.IGNORECASE)]
    if len(found) > 1:
        raise RosterError(f"the roster {roster_path} has several columns that may be '{config.name}' "
                          f"({'; '.join(found)}): name one with --column, or set canvas_id in grading.yml")
    return found[0] if found else config.name


def export(config, finals, fmt, out, roster=None, roster_path=None, column=None):
    """Write finals ({student: scores.Final}) in format fmt to out (canvas: the assignment's
    column as canvas_column finds it); returns the number of rows."""
    people = students(finals, roster)
    full = config.full_points
    total = {p.id: finals[p.id].total if p.id in finals else 0.0 for p in people}
    if fmt == "canvas":
        header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", canvas_column(config, roster_path, column)]
        rows = [["    Points Possible", "", "", "", "", report.fmt(full)]]
        rows += [[p.name, p.id, p.sis_user_id, p.sis_login_id, p.section, report.fmt(total[p.id])] for p in people]
    elif fmt == "moodle":
        header = ["Identifier", "Full name", "Email address", "Grade", "Maximum Grade", "Feedback comments"]
        rows = [[f"Participant {p.id}", p.name, p.email, report.fmt(total[p.id]), report.fmt(full),
                 comment(finals.get(p.id), config.notebook)] for p in people]
    elif fmt == "csv":
        cells = [f"check_{e}" for e in config.points] + list(config.manual)
        header = ["student_id", *config.points, *config.manual, "late_penalty", "total", "max_score"]
        rows = []
        for p in people:
            final = finals.get(p.id)
            points = [report.fmt((final.cells.get(c) or 0.0) if final else 0.0) for c in cells]
            rows.append([p.id, *points, report.fmt(-(final.penalty if final else 0.0)), report.fmt(total[p.id]),
                         report.fmt(full)])
    else:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, header, rows)
    return len(people)


def comment(final, notebook):
    """A one-line summary for Moodle's feedback column (the feedback page has the details):
    "No submission." for a student who sent no notebook, the reason for one that could not be
    read, else the score."""
    if final is None or (final.unread or "").startswith(f"no {notebook} found"):
        return "No submission."
    if final.unread:
        return f"No gradable notebook ({final.unread}): {report.fmt(final.total)}."
    text = f"Score {report.fmt(final.score)} / {report.fmt(sum(final.max_cells.values()))}"
    if final.penalty:
        text += f", late penalty {report.fmt(final.penalty)}"
    return text + f": {report.fmt(final.total)}."
