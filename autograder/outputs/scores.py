"""Final scores from the nbgrader gradebook: auto-graded points, the TA's manual points and
comments, and the late penalty. What `export` and `feedback` read."""
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path


@dataclass
class Final:
    student: str
    cells: dict                    # grade cell name -> points (manual when given, else auto; None: waiting)
    max_cells: dict                # grade cell name -> max points
    comments: dict = field(default_factory=dict)   # grade cell name -> the TA's comment
    penalty: float = 0.0
    submitted: object = None       # aware UTC datetime or None
    waiting: list = field(default_factory=list)    # cells still waiting for a manual grade
    unread: str = None             # why no notebook could be graded (nothing submitted, unreadable), or None

    @property
    def score(self):
        return round(sum(v or 0.0 for v in self.cells.values()), 4)

    @property
    def total(self):
        return round(max(0.0, self.score - self.penalty), 4)

    def for_feedback(self, config):
        """What the student's feedback page shows of the gradebook (report.feedback_html's
        `manual`): each written answer (points, comment, a pending regrade), the exercises' points
        as counted (a TA's override included), and the final score's parts, which add up."""
        written = round(sum(self.cells.get(q) or 0.0 for q in config.manual), 4)
        return {"questions": [{"id": q, "score": self.cells.get(q), "max_score": self.max_cells.get(q, p),
                               "comment": self.comments.get(q), "pending": q in self.waiting}
                              for q, p in config.manual.items()],
                "exercises": {e: self.cells[f"check_{e}"] for e in config.points
                              if self.cells.get(f"check_{e}") is not None},
                "auto": round(self.score - written, 4), "written": written, "late_penalty": self.penalty,
                "final": self.total, "max_score": config.full_points, "pending": list(self.waiting)}


def points(grade):
    """A grade's points as nbgrader counts them: the manual score when given, else the auto score."""
    if grade.manual_score is not None:
        return float(grade.manual_score)
    return float(grade.auto_score or 0.0)


def notebook_score(notebook):
    """Sum of a submitted notebook's points, from the objects in the session (nbgrader's own
    `score` is computed by the database when loaded, so it lags behind changes not yet saved)."""
    return sum(points(g) for g in notebook.grades)


def settle(config, db_path):
    """{student: Final} for every submission of the assignment in the gradebook at db_path.

    The late penalty is recomputed from grading.yml's policy on the current auto + manual score
    and written back to nbgrader's late_submission_penalty, so `nbgrader export` agrees."""
    from autograder.outputs.gradebook import NO_RESPONSE, course_id, open_gradebook
    db_path = Path(db_path)
    if not db_path.is_file():
        raise FileNotFoundError(f"no gradebook at {db_path}: run `grade` first")
    finals = {}
    with open_gradebook(db_path, course_id(db_path.parent)) as gb:
        assignment = gb.find_assignment(config.name)
        for submission in assignment.submissions:
            final = Final(submission.student.id, {}, {})
            if submission.timestamp is not None:
                final.submitted = submission.timestamp.replace(tzinfo=timezone.utc)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    name = grade.cell.name
                    final.max_cells[name] = float(grade.max_score)
                    waiting = grade.manual_score is None and grade.auto_score is None
                    final.cells[name] = None if waiting else points(grade)
                    if grade.needs_manual_grade:
                        final.waiting.append(name)
                for comment in notebook.comments:
                    if comment.manual_comment:
                        final.comments[comment.cell.name] = comment.manual_comment
                    if comment.cell.name in config.manual and comment.auto_comment not in (None, NO_RESPONSE):
                        final.unread = comment.auto_comment     # gradebook.record's reason for a notebook not shown
                if config.late:
                    notebook.late_submission_penalty = config.late.penalty(final.submitted, notebook_score(notebook),
                                                                           config.full_points)
                final.penalty += float(notebook.late_submission_penalty or 0.0)
            finals[final.student] = final
        gb.db.commit()
    return finals


def students(config, db_path):
    """The students with a submission of the assignment in the gradebook at db_path."""
    from nbgrader.api import MissingEntry
    from autograder.outputs.gradebook import course_id, open_gradebook
    with open_gradebook(Path(db_path), course_id(Path(db_path).parent)) as gb:
        try:
            return {s.student.id for s in gb.find_assignment(config.name).submissions}
        except MissingEntry:
            return set()
