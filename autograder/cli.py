"""python -m autograder {collect,grade,feedback,export,samples,demo,mutants,gradescope} ... (see README, "For TAs")."""
import argparse
import os
import sys
import time
from pathlib import Path

from autograder import config as configuration
from autograder import consistency, layout
from autograder.outputs import late, report
from autograder.outputs.student_text import printable
from autograder.integrations.lms.collect import CollectError
from autograder.grade import Grader, grade_all
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
                  allow_missing=False, unsandboxed=False):
    """Grade every submission under root into out (with `student`, that one only, into the class
    outputs already in out); with `gradebook` (a path to gradebook.db), also record the grades
    there for formgrader and `nbgrader export`. The output folder is created closed to other
    users (the "uid" sandbox checks that its student cannot read it)."""
    root = Path(root)
    if not root.is_dir():
        raise GraderError(f"{root} is not a folder of submissions")
    problems = consistency.mismatches(config)
    if problems:
        raise GraderError("grading.yml and the release notebook disagree (fix one, then `make release`):\n  "
                          + "\n  ".join(problems))
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
    protected = [root, Path(out)] + ([Path(gradebook)] if gradebook is not None else [])
    grader = Grader.prepare(config, sandbox_mode, unsandboxed, protected)
    if grader.sandbox == "none":
        print(UNSANDBOXED_WARNING, file=sys.stderr)
    if not quiet:
        where = {"bubblewrap": "a bubblewrap sandbox",
                 "uid": f"processes of unprivileged uids ({UIDS.start}-{UIDS.stop - 1}, one per process)",
                 "none": "plain processes, UNSANDBOXED"}[grader.sandbox]
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
    everyone = results
    if student is not None:
        everyone = sorted([r for r in report.read_results(out) if r["student_id"] != student] + results,
                          key=lambda r: r["student_id"])
    report.write_all(config, everyone, out, only={r["student_id"] for r in results})
    if not quiet:
        print(report.table(config, everyone))
        for line in integrity_flags(results):
            print(printable(line))
        if refused:
            print("\n" + refused_line(refused))
        print(f"\n{len(results)} graded in {graded_seconds:.1f} s ({report.status_counts(results)}). "
              f"Grades: {Path(out) / 'grades.csv'}; feedback: {Path(out) / 'feedback'}/; "
              f"details: {Path(out) / 'results'}/")
    if gradebook is not None:
        write_gradebook(config, results, submissions, gradebook, quiet)
    return results


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
    """What grading the notebook itself cannot know: how the folder was read (a renamed
    notebook, what is there instead of one) and the late penalty from timestamp.txt."""
    note = layout.note(root, student, config.name, config.notebook, path)
    if note:
        result.setdefault("notes", []).append(note)
        if result["status"] == "missing":
            result["reason"] = f"{result['reason']}: {note}"
    submitted = late.read_timestamp(path.parent) if path else None
    late.annotate(result, config.late, submitted, config.full_points)


def write_gradebook(config, results, submissions, db_path, quiet=False):
    """Record results in the gradebook at db_path, with a progress bar; print where it is, how to
    open formgrader, and the manual grades to look at again (returned)."""
    from autograder.outputs import gradebook
    started = time.monotonic()
    bar, advance = progress_bar(len(results), quiet, "gradebook")
    try:
        with bar:
            folder, flags = gradebook.write(config, results, submissions, db_path, quiet, advance)
    except Exception as exc:
        raise GraderError(f"could not write the gradebook {db_path}: {type(exc).__name__}: {exc}") from exc
    if not quiet:
        count, waiting = gradebook.summary(db_path)
        here = Path.cwd().resolve()
        print(f"Gradebook: {gradebook.shown(Path(db_path).resolve(), here)} ({count} submission(s), {waiting} "
              f"answer(s) waiting for a manual grade; {time.monotonic() - started:.1f} s); autograded "
              f"notebooks: {gradebook.shown(Path(folder) / 'autograded', here)}/\n"
              f"Formgrader: {gradebook.formgrader_hint(folder)}")
        if flags:
            print(f"Manual grades to look at again ({len(flags)}), flagged in formgrader:")
            for student, cell, why in flags:
                print(printable(f"  {student} {cell}: {why}"))
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
                          allow_missing=args.allow_missing, unsandboxed=args.unsandboxed)
        elif args.command == "collect":
            return collect_command(config, args.download, args.into, args.roster)
        elif args.command == "feedback":
            feedback_command(config, args.out, args.gradebook or configuration.REPO / "gradebook.db")
        elif args.command == "export":
            export_command(config, args.format, args.out, args.gradebook or configuration.REPO / "gradebook.db",
                           args.roster)
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
    except (configuration.ConfigError, GraderError, RosterError, CollectError, FileNotFoundError) as exc:
        print(f"autograder: {exc}", file=sys.stderr)
        return 2
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
    print(f"\nNext: python -m autograder grade {into} --assignment {config.name} --out grades")
    return 0


def feedback_command(config, out, db_path):
    """Rebuild every feedback page under out with the TA's manual grades, comments and the final score."""
    from autograder.outputs import scores
    finals = scores.settle(config, db_path)
    results = report.read_results(out)
    if not results:
        raise GraderError(f"no results under {Path(out) / 'results'}: run `grade` first")
    for result in results:
        final = finals.get(result["student_id"])
        manual = None
        if final is not None:
            manual = {"questions": [{"id": q, "score": final.cells.get(q), "max_score": final.max_cells.get(q, p),
                                     "comment": final.comments.get(q)} for q, p in config.manual.items()],
                      "late_penalty": final.penalty, "final": final.total, "max_score": config.full_points}
        (Path(out) / "feedback" / f"{result['student_id']}.html").write_text(report.feedback_html(result, manual))
    waiting = sorted(s for s, f in finals.items() if f.waiting)
    print(f"Rebuilt {len(results)} feedback page(s) in {Path(out) / 'feedback'}/ with the manual grades."
          + (f" Still waiting for a manual grade: {printable(', '.join(waiting))}" if waiting else ""))


def export_command(config, fmt, out, db_path, roster_path=None):
    from autograder.outputs import scores
    from autograder.integrations.lms import export, roster
    enrolled = roster.read(roster_path) if roster_path else None
    finals = scores.settle(config, db_path)
    count = export.export(config, finals, fmt, out, enrolled, roster_path)
    waiting = sorted(s for s, f in finals.items() if f.waiting)
    print(f"Wrote {count} row(s) to {out} ({fmt})."
          + (f" Waiting for a manual grade (counted as 0): {printable(', '.join(waiting))}" if waiting else ""))


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
