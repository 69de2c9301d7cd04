"""python -m autograder {grade,samples,demo,mutants,gradescope} ... (see README, "For TAs")."""
import argparse
import os
import sys
import time
from pathlib import Path

from autograder import config as configuration
from autograder import report
from autograder.grade import Grader, find_submissions, grade_all
from autograder.sandbox import NOBODY, GraderError


def progress_bar(total, quiet=False):
    """A progress bar on stderr (tqdm) and the callback that advances it."""
    from tqdm import tqdm
    bar = tqdm(total=total, desc="grading", unit="submission", file=sys.stderr, disable=quiet,
               bar_format="{desc}: {n}/{total} |{bar:30}| {elapsed}<{remaining} {postfix}")

    def advance(result):
        bar.set_postfix_str(f"{result['student_id']}: {report.fmt(result['score'])}/{report.fmt(result['max_score'])}")
        bar.update()
    return bar, advance


UNSANDBOXED_WARNING = """
!!! WARNING: grading WITHOUT a kernel sandbox (--unsandboxed). A student's notebook can read the
!!! solutions, the hidden tests and classmates' notebooks, and change grades. Every result of this
!!! run says "sandbox": "none". Do not use these grades as grades of record.
"""


def grade_command(config, root, out, jobs, sandbox_mode, gradebook=None, quiet=False, unsandboxed=False):
    """Grade every submission under root into out; with `gradebook` (a path to gradebook.db),
    also record the grades there for formgrader and `nbgrader export`. The output folder is
    created closed to other users (the "uid" sandbox checks that its student cannot read it)."""
    root = Path(root)
    if not root.is_dir():
        raise GraderError(f"{root} is not a folder of submissions")
    Path(out).mkdir(mode=0o700, parents=True, exist_ok=True)
    submissions = find_submissions(root, config.name, config.notebook)
    protected = [root, Path(out)] + ([Path(gradebook)] if gradebook is not None else [])
    grader = Grader.prepare(config, sandbox_mode, unsandboxed, protected)
    if grader.sandbox == "none":
        print(UNSANDBOXED_WARNING, file=sys.stderr)
    if not quiet:
        where = {"bubblewrap": "a bubblewrap sandbox", "uid": f"processes of the unprivileged uid {NOBODY}",
                 "none": "plain processes, UNSANDBOXED"}[grader.sandbox]
        print(f"Grading {len(submissions)} submission(s) of '{config.name}' in {where}, "
              f"{jobs or os.cpu_count()} at a time.", file=sys.stderr)
    started = time.monotonic()
    bar, advance = progress_bar(len(submissions), quiet)
    with bar:
        results = grade_all(grader, submissions, jobs, advance)
    report.write_all(config, results, out)
    if not quiet:
        print(report.table(config, results))
        print(f"\n{len(results)} graded in {time.monotonic() - started:.1f} s. "
              f"Grades: {Path(out) / 'grades.csv'}; feedback: {Path(out) / 'feedback'}/; "
              f"details: {Path(out) / 'results'}/")
    if gradebook is not None:
        write_gradebook(config, results, submissions, gradebook, quiet)
    return results


def write_gradebook(config, results, submissions, db_path, quiet=False):
    from autograder import gradebook
    started = time.monotonic()
    try:
        folder = gradebook.write(config, results, submissions, db_path, quiet)
    except Exception as exc:
        raise GraderError(f"could not write the gradebook {db_path}: {type(exc).__name__}: {exc}") from exc
    if not quiet:
        count, waiting = gradebook.summary(db_path)
        here = Path.cwd().resolve()
        print(f"Gradebook: {gradebook.shown(Path(db_path).resolve(), here)} ({count} submission(s), {waiting} "
              f"written answer(s) waiting for a manual grade; {time.monotonic() - started:.1f} s); autograded "
              f"notebooks: {gradebook.shown(Path(folder) / 'autograded', here)}/\n"
              f"Formgrader: {gradebook.formgrader_hint(folder)}")


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
        p.add_argument("--sandbox", choices=("auto", "bubblewrap", "uid", "none"), default="auto",
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
            grade_command(config, args.root, args.out, args.jobs, args.sandbox, book, unsandboxed=args.unsandboxed)
        elif args.command == "samples":
            write_samples(config, Path(args.out))
        elif args.command == "demo":
            # The demo's gradebook lives in OUT, which is then an nbgrader course folder of its own
            # (OUT/submitted, OUT/autograded, OUT/gradebook.db): the repository's gradebook is untouched.
            root = write_samples(config, Path(args.out) / "submitted")
            book = None if args.no_gradebook else (args.gradebook or Path(args.out) / "gradebook.db")
            grade_command(config, root, args.out, args.jobs, args.sandbox, book, unsandboxed=args.unsandboxed)
        elif args.command == "gradescope":
            from autograder import gradescope
            try:
                gradescope.main(config, args.out, configuration.REPO, args.notebook)
            except FileNotFoundError as exc:
                raise GraderError(str(exc)) from None
        elif args.command == "mutants":
            from autograder import mutants
            return mutants.main(config, args.jobs)
    except (configuration.ConfigError, GraderError) as exc:
        print(f"autograder: {exc}", file=sys.stderr)
        return 2
    return 0


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
