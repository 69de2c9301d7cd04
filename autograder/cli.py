"""python -m autograder {collect,grade,feedback,export,samples,demo,mutants,gradescope} ... (see README, "For TAs")."""
import argparse
import os
import shutil
import signal
import sys
import time
import zipfile
from pathlib import Path

from autograder import config as configuration
from autograder import consistency, layout
from autograder.outputs import late, report, scores, staging
from autograder.outputs.student_text import printable
from autograder.integrations.lms.collect import CollectError
from autograder.grade import Grader, Interrupted, grade_all, held, interruptible
from autograder.integrations.lms.roster import RosterError
from autograder.process.sandbox import MODES, UIDS, GraderError, refused_protections


def progress_bar(total, quiet=False, desc="grading"):
    """A progress bar on stderr (tqdm) and the callback that advances it (given a result, the
    bar shows its score; given anything else, it just counts)."""
    from tqdm import tqdm
    bar = tqdm(total=total, desc=desc, unit="submission", file=sys.stderr, disable=quiet,
               bar_format="{desc}: {n}/{total} |{bar:30}| {elapsed}<{remaining} {postfix}")

    def advance(result):
        if isinstance(result, dict):
            bar.set_postfix_str(f"{result['student_id']}: {report.fmt(result['score'])}/"
                                f"{report.fmt(result['max_score'])}")
        bar.update()
    return bar, advance


UNSANDBOXED_WARNING = """
!!! WARNING: grading WITHOUT a kernel sandbox (--unsandboxed). A student's notebook can read the
!!! solutions, the hidden tests and classmates' notebooks, and change grades. Every result of this
!!! run says "sandbox": "none". Do not use these grades as grades of record.
"""


def grade_command(config, root, out, jobs, sandbox_mode, gradebook=None, quiet=False, student=None,
                  allow_missing=False, unsandboxed=False, other_students=False):
    """Grade every submission under root into out (with `student`, that one only, into the class
    outputs already in out); with `gradebook` (a path to gradebook.db), also record the grades
    there for formgrader and `nbgrader export`, and build the feedback pages with the manual
    grades it holds. The output folder is created closed to other users (the "uid" sandbox
    checks that its student cannot read it).

    One run is one transaction (outputs.staging): grades.csv, results/, feedback/, the
    gradebook and autograded/ change together at the end, or not at all when it is interrupted
    (Ctrl-C, SIGTERM: staging.Interrupted, after every worker and student process is ended).
    One output folder and gradebook hold one class: a run refuses outputs that hold students
    the submissions do not (other_students: keep them, in every output)."""
    root = Path(root)
    check_root(config, root)
    problems = consistency.mismatches(config)
    if problems:
        raise GraderError("grading.yml and the release notebook disagree:\n  " + "\n  ".join(problems) +
                          f"\nA cell's points live in the source notebook's cell metadata (source/{config.name}/"
                          f"{config.notebook}, the cell's nbgrader \"points\"), which the release and the gradebook "
                          "are made from: change them there and in grading.yml together, then `make release`")
    submissions = layout.find_submissions(root, config.name, config.notebook)
    if student is not None:
        submissions = [s for s in submissions if s[0] == student]
        if not submissions:
            raise GraderError(f"no folder {root / student}")
    else:
        try:
            layout.diagnose(root, config.name, config.notebook, submissions, allow_missing)
        except layout.LayoutError as exc:
            raise GraderError(str(exc)) from None
    Path(out).mkdir(mode=0o700, parents=True, exist_ok=True)
    with staging.locked(staging.lock_files(out, gradebook)):
        kept = [] if student is not None else one_class(config, root, out, gradebook, submissions, other_students)
        protected = [root, Path(out)] + ([Path(gradebook)] if gradebook is not None else [])
        stage = None
        try:
            with interruptible():
                grader = Grader.prepare(config, sandbox_mode, unsandboxed, protected)
                if grader.sandbox == "none":
                    print(UNSANDBOXED_WARNING, file=sys.stderr)
                if not quiet:
                    where = {"bubblewrap": "a bubblewrap sandbox", "none": "plain processes, UNSANDBOXED",
                             "uid": f"processes of unprivileged uids ({UIDS.start}-{UIDS.stop - 1}, one per "
                                    "process)"}[grader.sandbox]
                    print(f"Grading {len(submissions)} submission(s) of '{config.name}' in {where}, "
                          f"{jobs or os.cpu_count()} at a time.", file=sys.stderr)
                refused = refused_protections(grader.sandbox)
                if refused and not quiet:
                    print(refused_line(refused), file=sys.stderr)
                started = time.monotonic()
                bar, advance = progress_bar(len(submissions), quiet)
                with bar:
                    results = grade_all(grader, submissions, jobs, advance)
                paths = dict(submissions)
                for result in results:
                    annotate(config, root, result, result["student_id"], paths[result["student_id"]])
                graded_seconds = time.monotonic() - started
                everyone = sorted(kept + results, key=lambda r: r["student_id"])
                if student is not None:
                    everyone = sorted([r for r in report.read_results(out) if r["student_id"] != student] + results,
                                      key=lambda r: r["student_id"])
                stage = staging.Stage(out, gradebook)
                flags, manuals = [], {}
                if gradebook is not None:
                    flags = write_gradebook(config, results, submissions, stage.gradebook, quiet, stage.autograded,
                                            roster_names(root))
                    manuals = {s: f.for_feedback(config) for s, f in scores.settle(config, stage.gradebook).items()}
                report.write_all(config, everyone, stage.files, only={r["student_id"] for r in results},
                                 manuals=manuals)
                with held():
                    stage.commit(config.name, [r["student_id"] for r in results])
        except Interrupted:
            if stage is not None and stage.committed:
                print("\ninterrupted: this run's outputs were complete and are kept (grades.csv, results/, "
                      "feedback/" + (", the gradebook" if gradebook is not None else "") + ")", file=sys.stderr)
            else:
                print("\ninterrupted: nothing written, rerun grade", file=sys.stderr)
            raise
        finally:
            if stage is not None and not stage.committed:
                stage.discard()
    if not quiet:
        shown = results if student is not None else everyone
        print(report.table(config, shown))
        for line in integrity_flags(results):
            print(printable(line))
        if refused:
            print("\n" + refused_line(refused))
        print(f"\n{len(results)} graded in {graded_seconds:.1f} s ({report.status_counts(results)}). "
              f"Grades: {Path(out) / 'grades.csv'}; feedback: {Path(out) / 'feedback'}/; "
              f"details: {Path(out) / 'results'}/")
        if gradebook is not None:
            gradebook_lines(gradebook, flags, manuals)
    return results


def check_root(config, root):
    """Refuse, saying what it is and what to run, a ROOT that cannot be a folder of submissions:
    an LMS download (a zip: `collect`), an output folder of `grade`, or nothing at all."""
    if root.is_file() and zipfile.is_zipfile(root):
        raise GraderError(f"{root} is a zip file, not a folder of submissions: run `python -m autograder collect "
                          f"{root} --assignment {config.name} --into ROOT` first, then grade ROOT")
    if not root.is_dir():
        raise GraderError(f"{root} is not a folder of submissions")
    if (root / "grades.csv").is_file() and (root / "results").is_dir():
        raise GraderError(f"{root} is an output folder of `grade` (it holds grades.csv and results/), not "
                          "submissions: grade the folder `collect` filled (its --into), with this one as --out")


def one_class(config, root, out, gradebook, submissions, other_students):
    """The results already in `out` of students not under `root` (kept when other_students, so
    that grades.csv, results, feedback and the gradebook still agree); else GraderError when `out`
    or the gradebook holds any: one output folder and gradebook hold one class."""
    here = {s for s, _ in submissions}
    kept = [r for r in report.read_results(out) if r["student_id"] not in here]
    foreign = {r["student_id"] for r in kept}
    in_book = set()
    if gradebook is not None and Path(gradebook).is_file():
        in_book = scores.students(config, gradebook) - here
    if (foreign or in_book) and not other_students:
        where = ([f"{out} holds results of {len(foreign)}"] if foreign else []) + (
            [f"the gradebook {gradebook} holds {len(in_book)}"] if in_book else [])
        example = printable(", ".join(sorted(foreign | in_book)[:5]))
        raise GraderError(f"{' and '.join(where)} student(s) with no folder under {root} ({example}): one output "
                          "folder and gradebook hold one class. Grade another class with its own --out and "
                          "--gradebook; pass --other-students to keep them (a class whose folder lost students)")
    return kept


def gradebook_lines(db_path, flags, manuals):
    """The gradebook's last lines: where it is, how to open formgrader, the manual grades to look
    at again, and that the feedback pages hold the manual grades."""
    from autograder.outputs import gradebook
    count, waiting = gradebook.summary(db_path)
    here = Path.cwd().resolve()
    folder = Path(db_path).resolve().parent
    print(f"Gradebook: {gradebook.shown(Path(db_path).resolve(), here)} ({count} submission(s), {waiting} "
          f"answer(s) waiting for a manual grade); autograded notebooks: "
          f"{gradebook.shown(folder / 'autograded', here)}/\n"
          f"Formgrader: {gradebook.formgrader_hint(folder)}")
    print(f"Feedback pages hold the gradebook's manual grades as they are now ({len(manuals)} student(s)); "
          "after grading by hand, run `feedback` to rebuild them.")
    if flags:
        print(f"Manual grades to look at again ({len(flags)}), flagged in formgrader:")
        for student, cell, why in flags:
            print(printable(f"  {student} {cell}: {why}"))


def refused_line(refused):
    """The TA's line naming the protections of the sandbox mode the kernel refused."""
    return ("Protections the kernel refused on this machine (each result's \"sandbox_refused\" names them): "
            + "; ".join(refused) + ".")


def integrity_flags(results):
    """Lines for the TA: each submission an integrity rule took points from, and why."""
    flagged = [(r["student_id"], e["id"], flag) for r in results for e in r["exercises"] for flag in e.get("flags", ())]
    if not flagged:
        return []
    return ["\nFlagged for a TA to look at (the exercise earned nothing):"] + [
        f"  {student}: {exercise} ({flag})" for student, exercise, flag in flagged]


def annotate(config, root, result, student, path):
    """What grading the notebook itself cannot know: what `collect` found (a notebook renamed or
    unpacked from a .zip, files that are not a notebook), how the folder was read (a renamed
    notebook, what is there instead of one) and the late penalty from timestamp.txt."""
    from autograder.integrations.lms.collect import NOTES_FILE
    found = Path(root) / student / config.name / NOTES_FILE
    notes = found.read_text(encoding="utf-8").splitlines() if found.is_file() else []
    notes += [n for n in [layout.note(root, student, config.name, config.notebook, path)] if n]
    for note in notes:
        result.setdefault("notes", []).append(note)
        if result["status"] == "missing":
            result["reason"] = f"{result['reason']}: {note}"
    submitted = late.read_timestamp(path.parent) if path else None
    late.annotate(result, config.late, submitted, config.full_points)


def roster_names(root):
    """{student: names for the gradebook} from the roster `collect --roster` kept in root, or {}."""
    from autograder.integrations.lms import roster
    saved = Path(root) / roster.SAVED
    return {s.id: roster.gradebook_names(s) for s in roster.read(saved)} if saved.is_file() else {}


def write_gradebook(config, results, submissions, db_path, quiet=False, staged=None, names=None):
    """Record results in the gradebook at db_path (autograded notebooks under `staged`, names of
    the students, see gradebook.write), with a progress bar; returns the manual grades to look at
    again."""
    from autograder.outputs import gradebook
    bar, advance = progress_bar(len(results), quiet, "gradebook")
    try:
        with bar:
            _, flags = gradebook.write(config, results, submissions, db_path, quiet, advance, staged, names)
    except Exception as exc:
        raise GraderError(f"could not write the gradebook {db_path}: {type(exc).__name__}: {exc}") from exc
    return flags


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    grade = sub.add_parser("grade", help="grade every submission under ROOT (nbgrader layout)")
    grade.add_argument("root", help="ROOT/<student_id>/<assignment>/<notebook>.ipynb")
    for p in [grade] + [sub.add_parser(n, help=h) for n, h in (
            ("samples", "write the bundled sample submissions"),
            ("demo", "write the samples, grade them, print the table"),
            ("mutants", "grade every catalogued misconception: detection and diagnosis rates"))]:
        p.add_argument("--assignment", required=True)
        p.add_argument("--jobs", type=int, default=None, help="parallel submissions (default: cores)")
        p.add_argument("--sandbox", choices=("auto",) + MODES, default="auto",
                       help="auto (default): bubblewrap where it works, else an unprivileged uid when "
                            "running as root; none needs --unsandboxed")
        p.add_argument("--unsandboxed", action="store_true",
                       help="grade even where no kernel sandbox works (results say \"sandbox\": \"none\"; "
                            "not for grades of record)")
        if p.prog.split()[-1] != "mutants":
            p.add_argument("--out", required=True)
        if p.prog.split()[-1] in ("grade", "demo"):
            where = "the course root's gradebook.db" if p is grade else "OUT/gradebook.db"
            book = p.add_mutually_exclusive_group()
            book.add_argument("--gradebook", metavar="PATH",
                              help=f"nbgrader gradebook to record the grades in (default: {where}); "
                                   "its folder is the nbgrader course folder (autograded/ goes there)")
            book.add_argument("--no-gradebook", action="store_true", help="write no gradebook")
    grade.add_argument("--student", metavar="ID", help="regrade this student only, into the class outputs in OUT")
    grade.add_argument("--allow-missing", action="store_true",
                       help="grade even when most student folders hold no notebook")
    grade.add_argument("--other-students", action="store_true",
                       help="grade even when OUT or the gradebook holds students with no folder under ROOT "
                            "(they are kept in every output); one output folder and gradebook hold one class")
    collect = sub.add_parser("collect", help="an LMS download (zip or folder) -> ROOT in nbgrader's layout")
    collect.add_argument("download", help="Canvas or Moodle zip or folder, flat <student>.ipynb, or nbgrader layout")
    collect.add_argument("--assignment", required=True)
    collect.add_argument("--into", required=True, metavar="ROOT")
    collect.add_argument("--roster", metavar="CSV", help="every enrolled student gets a folder (a row when graded)")
    feedback = sub.add_parser("feedback", help="rebuild OUT/feedback/ with the TA's manual grades and comments")
    export = sub.add_parser("export", help="final grades for the LMS: canvas, moodle or csv")
    for p in (feedback, export):
        p.add_argument("--assignment", required=True)
        p.add_argument("--gradebook", metavar="PATH", help="default: the course root's gradebook.db")
    feedback.add_argument("--out", required=True, help="the OUT of `grade` (results/ and feedback/)")
    export.add_argument("--format", required=True, choices=("canvas", "moodle", "csv"))
    export.add_argument("--out", required=True, metavar="FILE")
    export.add_argument("--roster", metavar="CSV", help="every enrolled student gets a row; names and sections")
    export.add_argument("--column", metavar="NAME", help="canvas: the assignment's column, as Canvas names it "
                        "(default: the roster's column ending in the assignment's Canvas id, else the assignment)")
    export.add_argument("--allow-unlisted", action="store_true",
                        help="write students of the gradebook who are not on the roster (without names)")
    export.add_argument("--any-roster", action="store_true",
                        help="accept a roster that is not the format's own (Canvas's gradebook export, "
                             "Moodle's grading worksheet)")
    scope = sub.add_parser("gradescope", help="write the Gradescope autograder zip")
    scope.add_argument("--assignment", required=True)
    scope.add_argument("--out", required=True, help="folder for <assignment>-gradescope.zip")
    scope.add_argument("--try", dest="notebook", metavar="NOTEBOOK",
                       help="then grade NOTEBOOK with the zip as Gradescope would (best as root) and show results.json")
    args = parser.parse_args(argv)
    try:
        config = configuration.load(args.assignment)
        if args.command == "grade":
            book = None if args.no_gradebook else (args.gradebook or configuration.REPO / "gradebook.db")
            grade_command(config, args.root, args.out, args.jobs, args.sandbox, book, student=args.student,
                          allow_missing=args.allow_missing, unsandboxed=args.unsandboxed,
                          other_students=args.other_students)
        elif args.command == "collect":
            return collect_command(config, args.download, args.into, args.roster)
        elif args.command == "feedback":
            feedback_command(config, args.out, args.gradebook or configuration.REPO / "gradebook.db")
        elif args.command == "export":
            export_command(config, args.format, args.out, args.gradebook or configuration.REPO / "gradebook.db",
                           args.roster, args.column, args.allow_unlisted, args.any_roster)
        elif args.command == "samples":
            write_samples(config, Path(args.out))
        elif args.command == "demo":
            # The demo's gradebook lives in OUT, which is then an nbgrader course folder of its own
            # (OUT/submitted, OUT/autograded, OUT/gradebook.db): the repository's gradebook is untouched.
            root = write_samples(config, Path(args.out) / "submitted")
            book = None if args.no_gradebook else (args.gradebook or Path(args.out) / "gradebook.db")
            grade_command(config, root, args.out, args.jobs, args.sandbox, book, unsandboxed=args.unsandboxed)
        elif args.command == "gradescope":
            from autograder.integrations import gradescope
            try:
                gradescope.main(config, args.out, configuration.REPO, args.notebook)
            except FileNotFoundError as exc:
                raise GraderError(str(exc)) from None
        elif args.command == "mutants":
            from autograder.judging import mutants
            return mutants.main(config, args.jobs)
    except (configuration.ConfigError, GraderError, RosterError, CollectError, FileNotFoundError,
            staging.Busy) as exc:
        print(f"autograder: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:     # grade_command said what it kept
        return 128 + signal.Signals[str(exc)].value
    return 0


def collect_command(config, download, into, roster_path=None):
    """Place an LMS download under `into`; print what went where. Returns the exit status."""
    from autograder.integrations.lms import collect, roster
    enrolled = roster.read(roster_path) if roster_path else None
    outcome = collect.collect(download, config.name, config.notebook, into, enrolled, config.late)
    print(outcome.text(into))
    if not outcome.placed:
        print(f"autograder: no notebook of {download} could be placed", file=sys.stderr)
        return 1
    if roster_path:
        shutil.copyfile(roster_path, Path(into) / roster.SAVED)   # `grade` gives the gradebook their names
    out = Path(into).with_name(Path(into).name + "-grades")
    print(f"\nNext: python -m autograder grade {into} --assignment {config.name} --out {out} "
          f"--gradebook {out / 'gradebook.db'}\n(one output folder and gradebook per class: give each download "
          "its own --into, and grade it into its own --out and --gradebook)")
    return 0


def feedback_command(config, out, db_path):
    """Rebuild every feedback page under out with the TA's manual grades, comments and the final
    score; refused when the gradebook lacks students graded in out (the wrong gradebook)."""
    results = report.read_results(out)
    if not results:
        raise GraderError(f"no results under {Path(out) / 'results'}: run `grade` first")
    with staging.locked(staging.lock_files(out, db_path)):
        finals = scores.settle(config, db_path)
        absent = sorted({r["student_id"] for r in results} - set(finals))
        if absent:
            raise GraderError(f"the gradebook {db_path} has no submission of {len(absent)} of the {len(results)} "
                              f"student(s) graded in {out} ({printable(', '.join(absent[:5]))}): is it the "
                              "gradebook `grade` wrote for this class? Give it with --gradebook")
        for result in results:
            page = Path(out) / "feedback" / f"{result['student_id']}.html"
            page.with_suffix(".incoming").write_text(
                report.feedback_html(result, finals[result["student_id"]].for_feedback(config)))
            os.replace(page.with_suffix(".incoming"), page)
    waiting = sorted(s for s, f in finals.items() if f.waiting)
    print(f"Rebuilt {len(results)} feedback page(s) in {Path(out) / 'feedback'}/ with the manual grades."
          + (f" Still waiting for a manual grade: {printable(', '.join(waiting))}" if waiting else ""))


def export_command(config, fmt, out, db_path, roster_path=None, column=None, allow_unlisted=False,
                   any_roster=False):
    """Write the final grades for the LMS. Refused (unless allow_unlisted, any_roster) when the
    gradebook holds students the roster does not list, or the roster is not the format's own."""
    from autograder.integrations.lms import export, roster
    enrolled = roster.read(roster_path) if roster_path else None
    finals = scores.settle(config, db_path)
    notes = []
    if enrolled is not None:
        found, wanted = roster.kind(roster_path), {"canvas": "canvas", "moodle": "moodle"}.get(fmt)
        if wanted and found != wanted:
            what = {"canvas": "Canvas's gradebook export (Student, ID, ...)",
                    "moodle": "Moodle's grading worksheet (Identifier, Full name, ...)"}
            problem = (f"the roster {roster_path} is not {what[wanted]}"
                       + (f"; it looks like {what[found]}" if found in what else ""))
            if not any_roster:
                raise RosterError(f"{problem}: give the {fmt} roster, or pass --any-roster")
            notes.append(problem)
        unlisted = sorted(set(finals) - {s.id for s in enrolled})
        if unlisted:
            problem = (f"{len(unlisted)} student(s) of the gradebook are not on the roster "
                       f"({printable(', '.join(unlisted[:10]))}{', ...' if len(unlisted) > 10 else ''})")
            if not allow_unlisted:
                raise RosterError(f"{problem}: is it this class's roster and gradebook? Pass --allow-unlisted "
                                  "to write them anyway (without names)")
            notes.append(problem + ": written without names")
    count = export.export(config, finals, fmt, out, enrolled, roster_path, column)
    waiting = sorted(s for s, f in finals.items() if f.waiting)
    print(f"Wrote {count} row(s) to {out} ({fmt})."
          + (f" Waiting for a manual grade (counted as 0): {printable(', '.join(waiting))}" if waiting else ""))
    if fmt == "canvas":
        name = export.canvas_column(config, roster_path, column)
        print(f"Canvas column: {name}" + ("" if column or name != config.name else
                                          " (no column of the roster is this assignment: Canvas will create a "
                                          "new assignment; give the roster's column with --column)"))
    for note in notes:
        print(printable(f"Note: {note}"))


def write_samples(config, root):
    """Write the assignment's sample submissions (config.module.SAMPLES) under root."""
    from autograder.samples import write_submission
    samples = getattr(config.module, "SAMPLES", None)
    if not samples:
        raise configuration.ConfigError(f"assignment '{config.name}' bundles no samples")
    for sample in samples:
        write_submission(root, sample.student_id, config.name, sample.file_name or config.notebook,
                         sample.build(config))
    print(f"Wrote {len(samples)} sample submissions under {root}", file=sys.stderr)
    return root
