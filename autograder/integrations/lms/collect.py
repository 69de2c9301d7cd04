"""`python -m autograder collect DOWNLOAD --assignment A --into ROOT`: an LMS download (a zip
or a folder) -> nbgrader's layout ROOT/<student>/<A>/<notebook> with timestamp.txt.

Recognised, file by file (CONTRACT section 4):
- Canvas "Download Submissions": flat `<name>_[LATE_]<user id>_<submission id>_<file name>`;
  the student is the Canvas user id; Canvas's renamed copies (`lstm-1.ipynb`) are accepted;
- Moodle "Download all submissions": folders `<Full Name>_<participant id>_assignsubmission_file_`;
  the student is the participant id;
- nbgrader's own layout `<student>/<A>/<file>.ipynb` (its timestamp.txt, which nbgrader's
  exchange writes, is kept);
- a flat folder of `<student>.ipynb`, or `<student>/<file>.ipynb`.
A single wrapper folder around everything (`submissions/...`) is looked through.

The notebook is placed under the release notebook's name (a renamed `lstm (1).ipynb` included,
and said so). Of several notebooks from one student the newest is kept and the others are
named. The time is what the LMS recorded: the zip entry's (its UTC extra field, else its date
taken as UTC) or the file's modification time; a time is written as nbgrader's timestamp.txt.
Never a file inside a student's upload: a `timestamp.txt` counts only in nbgrader's own
layout, never inside a Canvas or Moodle submission. Canvas's LATE_ mark is shown but is not a
time, though a disagreement between it and the time against grading.yml's due date is
said. A placed notebook keeps only `kernelspec` and `language_info` of its notebook-level
metadata. Every file not placed is listed with the reason. Whatever is printed (file names
included) is stripped of control characters first: no student's ANSI codes reach the terminal.
"""
import io
import re
import struct
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from autograder.outputs.late import TIMESTAMP_FILE, format_time, parse_time
from autograder.outputs.student_text import printable

NOTES_FILE = ".collect-notes.txt"   # beside the placed notebook: what collect found, for the results and feedback
CANVAS = re.compile(r"^(?P<name>[^_/]+?)_(?:(?P<late>LATE)_)?(?P<uid>\d+)_(?P<sid>\d+)_(?P<file>.+)$")
MOODLE = re.compile(r"^(?P<name>.+)_(?P<pid>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)_?$")
JUNK = ("__MACOSX", ".DS_Store", ".ipynb_checkpoints", "Thumbs.db")
KEPT_METADATA = {"kernelspec", "language_info"}     # a placed notebook's metadata: nothing that acts


class CollectError(Exception):
    """The download cannot be read at all."""


@dataclass
class Entry:
    """One file of the download."""
    parts: tuple             # its path inside the download
    time: datetime           # when it was submitted, as far as the download says, or None
    read: object             # () -> bytes


@dataclass
class Candidate:
    """A notebook that belongs to a student."""
    student: str
    entry: Entry
    late_mark: bool = False
    order: int = -1          # Canvas's submission id, when there is one
    file_name: str = ""      # the name the student gave it (Canvas's prefix removed)
    from_zip: str = ""       # the student's .zip it was unpacked from

    def __post_init__(self):
        self.file_name = self.file_name or self.entry.parts[-1]

    @property
    def shown(self):
        return "/".join(self.entry.parts)


@dataclass
class Stray:
    """A file that is not a notebook, from a known student (Canvas, Moodle): a .zip is looked
    into for a notebook; anything else is reported, and told to the student."""
    student: str
    entry: Entry
    file_name: str
    late_mark: bool = False
    order: int = -1

    def unpacked(self):
        """The Candidate of the one notebook inside a .zip (the one named like the release when
        there are several is not guessed: None), or None."""
        if not self.file_name.lower().endswith(".zip"):
            return None
        try:
            archive = zipfile.ZipFile(io.BytesIO(self.entry.read()))
            inside = [i for i in archive.infolist() if not i.is_dir() and i.filename.lower().endswith(".ipynb")
                      and not any(p in JUNK for p in i.filename.split("/"))]
        except (zipfile.BadZipFile, OSError, ValueError):
            return None
        if len(inside) != 1:
            return None
        name = inside[0].filename.rsplit("/", 1)[-1]
        entry = Entry(self.entry.parts + (name,), self.entry.time, lambda: archive.read(inside[0]))
        return Candidate(self.student, entry, self.late_mark, self.order, name, from_zip=self.file_name)


@dataclass
class Report:
    placed: list = field(default_factory=list)      # (student, source, note)
    dropped: list = field(default_factory=list)     # (source, why)
    unplaced: list = field(default_factory=list)    # (source, why)
    roster_only: list = field(default_factory=list)  # enrolled students with nothing submitted
    not_on_roster: list = field(default_factory=list)

    def text(self, into):
        """The report as printed: every line stripped of control characters."""
        lines = [f"Placed {len(self.placed)} submission(s) in {into}:"]
        lines += [f"  {student:<16} <- {source}{f'  ({note})' if note else ''}" for student, source, note in self.placed]
        if self.dropped:
            lines.append(f"Dropped {len(self.dropped)} older or extra file(s):")
            lines += [f"  {source}: {why}" for source, why in self.dropped]
        if self.unplaced:
            lines.append(f"Could not place {len(self.unplaced)} file(s):")
            lines += [f"  {source}: {why}" for source, why in self.unplaced]
        if self.roster_only:
            lines.append(f"On the roster, nothing submitted ({len(self.roster_only)}; an empty folder each, "
                         f"graded as missing): {', '.join(self.roster_only)}")
        if self.not_on_roster:
            lines.append(f"Not on the roster ({len(self.not_on_roster)}; placed anyway): "
                         f"{', '.join(self.not_on_roster)}")
        return "\n".join(printable(line) for line in lines)


def zip_time(info):
    """A zip entry's modification time: the UTC 'extended timestamp' extra field (0x5455) when
    present, else its DOS date and time, taken as UTC."""
    extra, k = info.extra, 0
    while k + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[k:k + 4])
        body = extra[k + 4:k + 4 + size]
        if tag == 0x5455 and size >= 5 and body[0] & 1:
            return datetime.fromtimestamp(struct.unpack("<i", body[1:5])[0], timezone.utc)
        k += 4 + size
    try:
        return datetime(*info.date_time, tzinfo=timezone.utc)
    except ValueError:
        return None


def entries(download):
    """Every file of a zip or a folder, as Entry objects, a common wrapper folder removed."""
    download = Path(download)
    found = []
    if download.is_dir():
        for path in sorted(p for p in download.rglob("*") if p.is_file()):
            found.append(Entry(path.relative_to(download).parts,
                               datetime.fromtimestamp(path.stat().st_mtime, timezone.utc),
                               lambda path=path: path.read_bytes()))
    elif zipfile.is_zipfile(download):
        archive = zipfile.ZipFile(download)
        for info in archive.infolist():
            parts = tuple(p for p in info.filename.replace("\\", "/").split("/") if p)
            if not info.is_dir() and parts:
                found.append(Entry(parts, zip_time(info), lambda info=info: archive.read(info)))
    elif download.exists():
        raise CollectError(f"{download} is neither a zip file nor a folder")
    else:
        raise CollectError(f"{download} does not exist")
    while found and all(len(e.parts) > 1 and e.parts[0] == found[0].parts[0] for e in found) \
            and not MOODLE.match(found[0].parts[0]):     # a Moodle download of one student is no wrapper
        for entry in found:
            entry.parts = entry.parts[1:]
    return found


def valid_id(text):
    """A name that can be a student's folder: not empty, no path, no control character."""
    return bool(text) and text not in (".", "..") and "/" not in text and "\\" not in text and printable(text) == text


def classify(entry, assignment):
    """Entry -> a Candidate, or the reason it cannot be placed (a string)."""
    parts, name = entry.parts, entry.parts[-1]
    if any(p in JUNK for p in parts):
        return "operating-system or Jupyter clutter"
    if name == TIMESTAMP_FILE:
        if nbgrader_timestamp(entry, assignment):
            return None                   # read with its notebook
        return "a timestamp.txt inside a submission, not read: times come from what the LMS recorded"
    is_notebook = name.lower().endswith(".ipynb")
    for folder in parts[:-1]:
        moodle = MOODLE.match(folder)
        if moodle:
            if moodle["plugin"] != "file":
                return f"Moodle {moodle['plugin']} submission, not a file"
            return Candidate(moodle["pid"], entry) if is_notebook else Stray(moodle["pid"], entry, name)
    canvas = CANVAS.match(name)
    if canvas:
        if not canvas["file"].lower().endswith(".ipynb"):
            return Stray(canvas["uid"], entry, canvas["file"], bool(canvas["late"]), int(canvas["sid"]))
        return Candidate(canvas["uid"], entry, bool(canvas["late"]), int(canvas["sid"]), canvas["file"])
    if not is_notebook:
        return "not a notebook"
    if len(parts) >= 3 and parts[-2] == assignment:
        student = parts[-3]
    elif len(parts) == 1:
        student = Path(name).stem
    elif len(parts) == 2:
        student = parts[0]
    else:
        return "a notebook in no layout this command knows (see README, Collect)"
    return Candidate(student, entry) if valid_id(student) else f"'{student}' cannot be a student id"


def newest_first(candidates, notebook, stamps):
    """Most recent first; without times, Canvas's later submission, then the release name."""
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(candidates, key=lambda c: (submission_time(c, stamps) or oldest, c.order, c.file_name == notebook,
                                             c.shown), reverse=True)


def submission_time(candidate, stamps):
    """nbgrader's own timestamp.txt beside the notebook wins; else the entry's time."""
    return stamps.get(candidate.entry.parts[:-1]) or candidate.entry.time


def nbgrader_timestamp(entry, assignment):
    """True for a timestamp.txt of nbgrader's own layout (`<student>/<assignment>/timestamp.txt`,
    written by nbgrader's exchange); False for any other, such as one a student uploaded to
    Canvas or Moodle among their files."""
    parts = entry.parts
    return (len(parts) == 3 and parts[-1] == TIMESTAMP_FILE and parts[1] == assignment
            and not any(MOODLE.match(p) or CANVAS.match(p) for p in parts))


def canvas_disagrees(candidate, when, late):
    """What to say when Canvas's LATE_ mark and the time against grading.yml's late policy
    disagree (a due date or an extension that differs, or a zip time read in the wrong zone),
    else None."""
    if late is None or when is None or candidate.order < 0:
        return None
    computed = late.seconds_late(when) > 0
    if candidate.late_mark and not computed:
        return "Canvas marks it LATE, but by grading.yml's due date it is on time: check the due dates"
    if computed and not candidate.late_mark:
        return ("Canvas does not mark it LATE, but by grading.yml's due date it is late: check for an "
                "extension in Canvas and the due dates")
    return None


def collect(download, assignment, notebook, into, roster=None, late=None):
    """Place a download under `into`; roster: [roster.Student] or None; late: grading.yml's
    late policy (or None), against which Canvas's LATE_ marks are checked. Returns a Report."""
    into, report = Path(into), Report()
    found = entries(download)
    stamps = {}
    for entry in found:
        if nbgrader_timestamp(entry, assignment):
            try:
                stamps[entry.parts[:-1]] = parse_time(entry.read().decode("utf-8", "replace").strip())
            except (ValueError, OverflowError):
                report.unplaced.append(("/".join(entry.parts), "a timestamp nbgrader cannot read"))
    by_student, strays = {}, {}
    for entry in found:
        outcome = classify(entry, assignment)
        if isinstance(outcome, Stray):
            outcome = outcome.unpacked() or outcome
        if isinstance(outcome, Candidate):
            by_student.setdefault(outcome.student, []).append(outcome)
        elif isinstance(outcome, Stray):
            strays.setdefault(outcome.student, []).append(outcome.file_name)
            report.unplaced.append(("/".join(entry.parts), "not a notebook"))
        elif outcome:
            report.unplaced.append(("/".join(entry.parts), outcome))
    for student in sorted(by_student):
        keep, *older = newest_first(by_student[student], notebook, stamps)
        when = submission_time(keep, stamps)
        notes = []
        if keep.from_zip:
            notes.append(f"unpacked from {keep.from_zip}")
        if keep.file_name != notebook:
            notes.append(f"{keep.file_name} renamed to {notebook}")
        told = notes[:]               # what the student is told (results, feedback)
        if keep.late_mark:
            notes.append("marked LATE by Canvas")
        notes.append(f"submitted {format_time(when)[:19]} UTC" if when else "no time known")
        disagreement = canvas_disagrees(keep, when, late)
        if disagreement:
            notes.append(disagreement)
        place(into / student / assignment, notebook, keep.entry.read(), when)
        tell(into / student / assignment, told)
        report.placed.append((student, keep.shown, "; ".join(notes)))
        for other in older:
            report.dropped.append((other.shown, f"{student} has a newer notebook ({keep.shown})"))
    for student in sorted(set(strays) - set(by_student)):   # sent files, none a notebook
        names = ", ".join(strays[student])
        (into / student / assignment).mkdir(parents=True, exist_ok=True)
        tell(into / student / assignment, [f"the submission holds {names}, not a notebook: submit {notebook}"])
    if roster is not None:
        enrolled = {s.id for s in roster}
        report.not_on_roster = sorted(set(by_student) - enrolled)
        for student in roster:
            if student.id not in by_student and student.id not in strays:
                (into / student.id).mkdir(parents=True, exist_ok=True)
                report.roster_only.append(student.id)
    return report


def without_extension_metadata(content):
    """The notebook's bytes with its notebook-level metadata reduced to `kernelspec` and
    `language_info`: another key (jupytext's pairing, widget state) would act when a TA opens
    and saves the file in Jupyter. Bytes that are not a notebook, or hold nothing else, are
    returned as they are (the grader judges them, and the same bytes meet the same inputs)."""
    import json
    try:
        nb = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return content
    metadata = nb.get("metadata") if isinstance(nb, dict) else None
    if not isinstance(metadata, dict) or set(metadata) <= KEPT_METADATA:
        return content
    nb["metadata"] = {key: value for key, value in metadata.items() if key in KEPT_METADATA}
    return (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def place(folder, notebook, content, when):
    """Write one submission: the notebook (without_extension_metadata), and timestamp.txt when
    its time is known."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.ipynb"):
        old.unlink()
    (folder / notebook).write_bytes(without_extension_metadata(content))
    stamp = folder / TIMESTAMP_FILE
    if when is not None:
        stamp.write_text(format_time(when) + "\n")
    elif stamp.exists():
        stamp.unlink()


def tell(folder, notes):
    """Keep what collect found for the student (NOTES_FILE, read by `grade`), or remove an old one."""
    path = Path(folder) / NOTES_FILE
    if notes:   # a file name is the student's: one line each, printable
        path.write_text("".join("".join(c if c.isprintable() else "?" for c in n) + "\n" for n in notes),
                        encoding="utf-8")
    else:
        path.unlink(missing_ok=True)
