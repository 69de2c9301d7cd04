"""One `grade` run as one transaction, and one run at a time.

Everything a run writes is staged beside its destination: OUT/.incoming/ (grades.csv,
results/, feedback/), a copy of the gradebook (<gradebook>.incoming) and the autograded
notebooks (<course folder>/.autograded.incoming/). Only when all of it is complete is it moved
into place (the CLI holds Ctrl-C and SIGTERM off for those few renames, grade.held). A run that is interrupted
or fails before then removes what it staged: grades.csv, results, feedback and the gradebook
stay as the previous run left them, in step with each other. A lock file beside each output
(OUT/.autograder.lock, <gradebook>.lock) refuses a second run on the same outputs."""
import contextlib
import fcntl
import os
import shutil
import sqlite3
from pathlib import Path


class Busy(Exception):
    """Another run holds the lock on these outputs."""


def lock_files(out, gradebook=None):
    """The lock files of a run writing to `out` (and the gradebook at `gradebook`)."""
    locks = [Path(out) / ".autograder.lock"]
    if gradebook is not None:
        locks.append(Path(gradebook).with_name(Path(gradebook).name + ".lock"))
    return locks


@contextlib.contextmanager
def locked(paths):
    """Hold an exclusive lock on each file of `paths` (created when missing) during the block;
    Busy when another process holds one. The kernel drops the locks when the process ends,
    however it ends."""
    handles = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            handles.append(open(path, "a"))
            try:
                fcntl.flock(handles[-1], fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(f"another run is writing to {path.parent} (it holds {path.name}); "
                           "wait for it to finish, then run again") from None
        yield
    finally:
        for handle in handles:
            handle.close()


class Stage:
    """The staged outputs of one run (see the module's docstring). `files` is where report.write_all
    writes, `gradebook` the database gradebook.write writes to, `autograded` where it writes the
    autograded notebooks; commit() moves all of it into place, discard() drops it."""

    def __init__(self, out, gradebook=None):
        self.out = Path(out)
        self.files = self.out / ".incoming"
        self.target = Path(gradebook) if gradebook is not None else None
        self.gradebook = self.target.with_name(self.target.name + ".incoming") if self.target else None
        self.autograded = self.target.parent / ".autograded.incoming" if self.target else None
        self.committed = False
        self.discard()                      # what a run killed outright (SIGKILL) left staged
        self.files.mkdir(parents=True)
        if self.target is not None and self.target.is_file():
            with contextlib.closing(sqlite3.connect(self.target)) as source, \
                    contextlib.closing(sqlite3.connect(self.gradebook)) as copy:
                source.backup(copy)

    def discard(self):
        """Remove everything staged."""
        shutil.rmtree(self.files, ignore_errors=True)
        if self.target is not None:
            self.gradebook.unlink(missing_ok=True)
            shutil.rmtree(self.autograded, ignore_errors=True)

    def commit(self, assignment, students):
        """Move the staged files into place: grades.csv, each result and feedback page, the
        gradebook, and the autograded notebooks of `students` (a student graded this run without
        one loses the old one, as gradebook.write_one says). Call it with signals held."""
        for kind in ("results", "feedback"):
            (self.out / kind).mkdir(exist_ok=True)
            for path in sorted((self.files / kind).iterdir()):
                os.replace(path, self.out / kind / path.name)
        os.replace(self.files / "grades.csv", self.out / "grades.csv")
        if self.target is not None:
            os.replace(self.gradebook, self.target)
            for student in students:
                staged = self.autograded / student / assignment
                final = self.target.parent / "autograded" / student / assignment
                shutil.rmtree(final, ignore_errors=True)
                if staged.is_dir():
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staged, final)
        self.discard()
        self.committed = True
