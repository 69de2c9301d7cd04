"""The Gradescope image's Python packages, pinned with hashes: requirements-gradescope.txt.

    .venv/bin/python -m tools.gradescope_lock          # rewrites requirements-gradescope.txt (network: PyPI)

The packages are the grader's runtime ones (`autograder.integrations.gradescope.RUNTIME_PACKAGES`)
and everything they require, at the versions this checkout's .venv holds (so Gradescope grades
with what the tests ran on). Each pin carries the sha256 of every wheel PyPI has for it that a
CPython 3.11 on Linux (x86_64 or aarch64) can install, so setup.sh's
`pip install --require-hashes --only-binary :all:` installs those very files or fails.
`tests/test_gradescope_setup.py` checks the lock against the .venv and pyproject.toml.
"""
import importlib.metadata
import json
import re
import sys
import urllib.request
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from autograder.integrations.gradescope import LOCK_FILE, RUNTIME_PACKAGES

REPO = Path(__file__).resolve().parents[1]
LINUX = re.compile(r"(manylinux1|manylinux2010|manylinux2014|manylinux_\d+_\d+)_(x86_64|aarch64)")
SIMPLE = "https://pypi.org/simple/{name}/"
HEADER = ("# The Gradescope image's Python packages, every one pinned with the hashes of its wheels for\n"
          "# CPython 3.11 on Linux. Written by `python -m tools.gradescope_lock`; do not edit.\n")


def closure(names):
    """{canonical name: installed version} of `names` and everything they require (markers
    evaluated for this interpreter, no extras)."""
    found, todo = {}, list(names)
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        name = canonicalize_name(dist.metadata["Name"])
        if name in found:
            continue
        found[name] = dist.version
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return dict(sorted(found.items()))


def installable(filename):
    """True for a wheel a CPython 3.11 on Linux x86_64 or aarch64 (glibc) can install."""
    if not filename.endswith(".whl"):
        return False
    return any(tag.interpreter in ("cp311", "py3", "py311") and tag.abi in ("cp311", "abi3", "none")
               and (tag.platform == "any" or LINUX.fullmatch(tag.platform))
               for tag in parse_wheel_filename(filename)[3])


def hashes(name, version):
    """sha256 of every installable wheel of name==version, from PyPI's simple index (JSON, PEP 691)."""
    request = urllib.request.Request(SIMPLE.format(name=name), headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    found = sorted(f["hashes"]["sha256"] for f in files if installable(f["filename"])
                   and str(parse_wheel_filename(f["filename"])[1]) == version)
    if not found:
        raise SystemExit(f"PyPI has no wheel of {name}=={version} for CPython 3.11 on Linux")
    return found


def lock_text(pins):
    """{name: version} -> the lock file's text, one pin and its hashes per entry."""
    entries = []
    for name, version in pins.items():
        lines = [f"{name}=={version}"] + [f"    --hash=sha256:{h}" for h in hashes(name, version)]
        entries.append(" \\\n".join(lines))
    return HEADER + "\n".join(entries) + "\n"


def main():
    text = lock_text(closure(RUNTIME_PACKAGES))
    (REPO / LOCK_FILE).write_text(text)
    print(f"{LOCK_FILE}: {text.count('==')} packages, {text.count('--hash')} hashes", file=sys.stderr)


if __name__ == "__main__":
    main()
