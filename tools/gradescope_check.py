"""The Gradescope zip proven in a fresh OS image: `make gradescope-check`.

    sudo .venv/bin/python -m tools.gradescope_check [--work DIR] [--mirror URL] [--samples a,b] [--keep]

As root, with debootstrap and util-linux's unshare, and the network (the Debian mirror apt
already uses here, and PyPI); a few minutes. It

1. builds the zip and the bundled sample submissions (assignments/<name>/samples.py);
2. builds a minimal Debian 12 image (`debootstrap --variant=minbase bookworm`);
3. unzips the zip into /autograder/source, copies run_autograder to /autograder, and runs
   setup.sh there as root (tools/gradescope_container.py: its own mount and PID namespaces);
4. grades every sample as Gradescope does: the upload in /autograder/submission/,
   /autograder/submission_metadata.json, /autograder/run_autograder run in /autograder,
   /autograder/results/results.json read back; once in the "bubblewrap" set-up (user namespaces
   allowed: the grader must pick bubblewrap) and once "docker-like" (no user namespaces,
   CAP_SYS_ADMIN dropped, cgroups read-only: it must pick the uid sandbox);
5. checks each results.json against Gradescope's specification (tools/gradescope_spec.py),
   the points against each sample's expected points, and the two set-ups' points against each other;
   then grades once more with setup.sh's venv moved away: the shell fallback's results.json;
6. prints the figures: set-up time, image size, seconds per submission in each set-up.
It exits 1 when anything failed. It is not part of `make test` (network, minutes). Run it while
nothing else grades on this machine in the uid sandbox: the host sees into the image's PID
namespace, and a host grader cleaning up its uid kills the image's student process of that uid.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from tools.gradescope_container import SETUPS
from tools.gradescope_spec import problems

REPO = Path(__file__).resolve().parents[1]
SANDBOX = {"bubblewrap": "bubblewrap", "docker-like": "uid"}   # the sandbox each set-up must get


def apt_mirror():
    """The Debian mirror this machine's apt uses (deb822 .sources files, else sources.list)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]:
        text = path.read_text() if path.is_file() else ""
        found = re.search(r"^URIs:\s*(\S*debian\S*)", text, re.MULTILINE) or \
            re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S*debian\S*)\s+\S+\s+main", text, re.MULTILINE)
        if found and "security" not in found.group(1):
            return found.group(1)
    return "http://deb.debian.org/debian"


def build_inputs(work, assignment, only):
    """The zip and the samples -> (zip path, [(sample, upload file name, bytes or None)])."""
    import importlib
    from autograder import config as configuration
    from autograder.integrations.gradescope import build
    config = configuration.load(assignment)
    zip_path = build(config, work / "dist", REPO)
    samples = importlib.import_module(f"assignments.{assignment}.samples").SAMPLES
    uploads = []
    for sample in samples:
        if only and sample.student_id not in only:
            continue
        content = sample.build(config)
        if isinstance(content, dict):
            content = json.dumps(content, indent=1).encode()
        uploads.append((sample, sample.file_name or config.notebook, content))
    return zip_path, uploads


def timed(command, **kwargs):
    """Run a command -> (CompletedProcess, seconds)."""
    started = time.monotonic()
    done = subprocess.run(command, **kwargs)
    return done, time.monotonic() - started


def inside(image, setup, command, **kwargs):
    """Run `command` inside the image in a set-up (tools/gradescope_container.py)."""
    return timed(["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "--",
                  sys.executable, "-m", "tools.gradescope_container", str(image), setup, "--", *command],
                 cwd=REPO, **kwargs)


def install_zip(image, zip_path):
    """Gradescope's image build: the zip in /autograder/source, run_autograder beside it; the
    host's name server and local CA certificates, for setup.sh's downloads."""
    source = image / "autograder" / "source"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(source)
        for info in zf.infolist():
            (source / info.filename).chmod(info.external_attr >> 16)
    shutil.copy2(source / "run_autograder", image / "autograder" / "run_autograder")
    shutil.copy2("/etc/resolv.conf", image / "etc" / "resolv.conf")
    local_cas = Path("/usr/local/share/ca-certificates")    # this host's own CAs (a TLS-inspecting proxy's):
    if local_cas.is_dir():                                  # setup.sh's ca-certificates trusts them too
        shutil.copytree(local_cas, image / local_cas.relative_to("/"), dirs_exist_ok=True)


def grade(image, setup, sample, file_name, content):
    """One submission as Gradescope runs it -> (results dict or None, seconds, run_autograder's output)."""
    root = image / "autograder"
    for folder in ("submission", "results"):
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir()
    if content is not None:
        (root / "submission" / file_name).write_bytes(content)
    (root / "submission_metadata.json").write_text(json.dumps({
        "id": 1, "created_at": "2026-12-01T12:00:00.000000-08:00", "submission_method": "upload",
        "assignment": {"title": "check", "total_points": "24.0"}, "previous_submissions": [],
        "users": [{"id": sample.student_id, "name": sample.student_id, "email": f"{sample.student_id}@example.edu"}]}))
    done, seconds = inside(image, setup, ["/autograder/run_autograder"], capture_output=True, text=True, timeout=900)
    (root / "results" / "stdout").write_text(done.stdout + done.stderr)
    path = root / "results" / "results.json"
    return (json.loads(path.read_text()) if path.is_file() else None), seconds, done.stdout + done.stderr


def judge(results, setup, sample):
    """What is wrong with one results.json, in words."""
    if results is None:
        return ["no results.json"]
    found = problems(results)
    if (results.get("extra_data") or {}).get("sandbox") != SANDBOX[setup]:
        found.append(f"sandbox {results.get('extra_data', {}).get('sandbox')!r}, expected {SANDBOX[setup]!r}")
    points = {t["name"]: t["score"] for t in results.get("tests", []) if "score" in t}
    expected = getattr(sample, "expected", None)
    if expected and any(abs(points.get(k, -1) - v) > 1e-9 for k, v in expected.items()):
        found.append(f"points {points}, expected {expected}")
    return found


def broken_image(image, upload):
    """setup.sh's venv gone (a build that failed half-way): run_autograder must still leave a
    valid results.json with the plain failure text -> failures, as in main."""
    from autograder.integrations.gradescope import FAILED, VENV
    venv = image / VENV.lstrip("/")
    venv.rename(venv.with_name("venv-moved-away"))
    try:
        results, took, output = grade(image, SETUPS[-1], *upload)
    finally:
        venv.with_name("venv-moved-away").rename(venv)
    wrong = ["no results.json"] if results is None else problems(results)
    if results is not None and results.get("output") != FAILED:
        wrong.append(f"output {results.get('output')!r}, expected the plain failure text")
    print(f"{'no venv':<12} {upload[0].student_id:<24} {'-':>5} {took:6.2f} s  {'; '.join(wrong) or 'ok'}", flush=True)
    return [("no venv", upload[0].student_id, wrong, output[-1500:])] if wrong else []


def comparable(results):
    """What must not differ between set-ups: the total and each test's name and score (the words
    may: a hang's message depends on which limit stopped it first)."""
    return results and (results["score"], [(t["name"], t.get("score")) for t in results["tests"]])


def size_mb(folder):
    """Disk use of a folder in MB (du)."""
    return int(subprocess.run(["du", "-sxm", str(folder)], capture_output=True, text=True).stdout.split()[0])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.gradescope_check", description=__doc__.split("\n")[0])
    parser.add_argument("--assignment", default="lstm")
    parser.add_argument("--work", type=Path, help="a folder for the image (default: a temporary one, removed)")
    parser.add_argument("--mirror", default=None, help="the Debian mirror (default: the one apt uses here)")
    parser.add_argument("--samples", default="", help="comma-separated sample ids (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the image afterwards")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("debootstrap", "unshare", "mount") if not shutil.which(tool)]
    if missing or os.geteuid() != 0:
        raise SystemExit("needs root, debootstrap, unshare and mount (apt-get install debootstrap)")
    work = Path(tempfile.mkdtemp(prefix="gradescope-check-", dir=args.work))
    image, failures, figures = work / "image", [], {}
    try:
        zip_path, uploads = build_inputs(work, args.assignment, set(filter(None, args.samples.split(","))))
        mirror = args.mirror or apt_mirror()
        print(f"debootstrap bookworm from {mirror} ...", flush=True)
        done, figures["debootstrap_s"] = timed(["debootstrap", "--variant=minbase", "bookworm", str(image), mirror],
                                               capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"debootstrap failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        figures["base_mb"] = size_mb(image)
        install_zip(image, zip_path)
        print("setup.sh ...", flush=True)
        done, figures["setup_s"] = inside(image, "bubblewrap", ["bash", "/autograder/source/setup.sh"],
                                          capture_output=True, text=True)
        print(done.stdout[-3000:] + done.stderr[-3000:])
        if done.returncode:
            raise SystemExit("setup.sh failed")
        figures["image_mb"] = size_mb(image)
        seen = {}
        for setup in SETUPS:
            seconds = []
            for sample, file_name, content in uploads:
                results, took, output = grade(image, setup, sample, file_name, content)
                seconds.append(took)
                wrong = judge(results, setup, sample)
                if setup != SETUPS[0] and comparable(results) != seen.get(sample.student_id):
                    wrong.append("differs from the bubblewrap set-up's results")
                seen.setdefault(sample.student_id, comparable(results))
                score = f"{results['score']:g}" if results else "-"
                print(f"{setup:<12} {sample.student_id:<24} {score:>5} {took:6.2f} s  {'; '.join(wrong) or 'ok'}",
                      flush=True)
                if wrong:
                    shown = json.dumps({k: results[k] for k in ("output", "tests")}, indent=1) if results else ""
                    failures.append((setup, sample.student_id, wrong, output[-1500:] + shown[:4000]))
            refused = (results or {}).get("extra_data", {}).get("sandbox_refused")
            figures[setup] = {"submissions": len(seconds), "median_s": statistics.median(seconds),
                              "max_s": max(seconds), "refused": refused}
        failures += broken_image(image, uploads[0])
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=1))
    for setup, student, wrong, output in failures:
        print(f"FAILED {setup} {student}: {'; '.join(wrong)}\n{output}")
    print("gradescope-check:", "FAILED" if failures else "passed", f"({len(failures)} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
