"""A class roster from the LMS: who is enrolled, under which id, name and section.

Read from a CSV with a header. The student id is taken from the first of these columns:
`ID` (Canvas's gradebook export: the Canvas user id), `Identifier` (Moodle's grading
worksheet: "Participant 123456" -> 123456), `student_id` or `id`. Canvas's other columns
(`Student`, `SIS User ID`, `SIS Login ID`, `Section`) and Moodle's (`Full name`, `Email address`)
are kept for the exports. Rows without an id (Canvas's "Points Possible" row) are skipped."""
import csv
from dataclasses import dataclass

ID_COLUMNS = ("ID", "Identifier", "student_id", "id")


class RosterError(ValueError):
    """The roster cannot be read."""


@dataclass(frozen=True)
class Student:
    id: str
    name: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    email: str = ""


def _cell(row, *names):
    for name in names:
        if row.get(name):
            return row[name].strip()
    return ""


def read(path):
    """The roster at path -> [Student] in file order, one per id."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
            header = rows and list(rows[0]) or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RosterError(f"cannot read the roster {path}: {exc}") from None
    column = next((c for c in ID_COLUMNS if c in header), None)
    if column is None:
        raise RosterError(f"the roster {path} has none of the id columns {', '.join(ID_COLUMNS)}")
    students, seen = [], set()
    for row in rows:
        sid = (row.get(column) or "").strip()
        if column == "Identifier":
            sid = sid.removeprefix("Participant").strip()
        if not sid or sid in seen or sid in (".", ".."):
            continue
        seen.add(sid)
        students.append(Student(sid, _cell(row, "Student", "Full name", "name"), _cell(row, "SIS User ID"),
                                _cell(row, "SIS Login ID"), _cell(row, "Section"), _cell(row, "Email address")))
    return students


def kind(path):
    """Which LMS file the roster is, from its header: "canvas" (Canvas's gradebook export:
    `Student` and `ID`), "moodle" (Moodle's grading worksheet: `Identifier`), else "plain"."""
    columns = header(path)
    if "Student" in columns and "ID" in columns:
        return "canvas"
    return "moodle" if "Identifier" in columns else "plain"


def header(path):
    """The roster's column names."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RosterError(f"cannot read the roster {path}: {exc}") from None


SAVED = ".roster.csv"   # the roster `collect --roster` keeps in ROOT, for `grade` to name the students


def gradebook_names(student):
    """A Student's name as nbgrader's gradebook keeps it: Canvas's "Smith, John" and Moodle's
    "Ada Lovelace" -> {first_name, last_name, email}."""
    from autograder.outputs.student_text import printable
    name = printable(student.name)
    last, comma, first = name.partition(",")
    if not comma:
        first, _, last = name.rpartition(" ")
    return {"first_name": first.strip() or None, "last_name": last.strip() or None,
            "email": printable(student.email) or None}
