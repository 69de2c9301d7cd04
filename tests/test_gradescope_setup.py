"""setup.sh and its lock, without the network: the lock pins what this .venv grades with, every
package with hashes; setup.sh, run against fake apt-get, python3.11 and pip, installs only what
it needs (the PPA tooling only where the distribution has no python3.11), installs from the lock
with hashes required, cleans apt's cache and lists, and names the step that failed. Also: the
results.json checker of tools/gradescope_spec.py rejects what Gradescope's specification does."""
import importlib.metadata
import os
import re
import subprocess
import tomllib

import pytest

from autograder.integrations.gradescope import LOCK_FILE, RUNTIME_PACKAGES, SCRIPTS, filled
from tests.conftest import REPO
from tools.gradescope_lock import closure
from tools.gradescope_spec import problems

PIN = re.compile(r"^([a-z0-9-]+)==(\S+) \\$", re.MULTILINE)


def test_the_lock_pins_what_this_venv_grades_with_each_with_hashes():
    text = (REPO / LOCK_FILE).read_text()
    pins = dict(PIN.findall(text))
    assert pins == closure(RUNTIME_PACKAGES)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for package in RUNTIME_PACKAGES:
        assert f"{package}=={pins[package]}" in project
        assert importlib.metadata.version(package) == pins[package]
    for name in pins:     # each pin followed by one or more hashes
        assert re.search(rf"^{name}==\S+ \\\n(    --hash=sha256:[0-9a-f]{{64}}( \\\n|\n))+", text, re.MULTILINE), name


FAKES = {
    # apt-get: logs its arguments; python3.11 is "in the distribution" unless NO_PY311 is set,
    # and then only once the PPA was added
    "apt-get": """#!/bin/sh
echo "apt-get $*" >> "$LOG"
case "$*" in *python3.11*)
  if [ -n "$NO_PY311" ] && [ ! -f "$STATE/ppa" ]; then exit 100; fi
  touch "$STATE/py311" ;; esac
exit 0
""",
    "add-apt-repository": '#!/bin/sh\necho "add-apt-repository $*" >> "$LOG"\ntouch "$STATE/ppa"\n',
    # python3.11: present with ensurepip when PY311_PRESENT or once apt installed it; -m venv makes a fake venv
    "python3.11": """#!/bin/sh
[ -n "$PY311_PRESENT" ] || [ -f "$STATE/py311" ] || exit 1
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/bin/sh\\necho "pip $*" >> "$LOG"\\nexit ${PIP_STATUS:-0}\\n' > "$3/bin/pip"
  printf '#!/bin/sh\\necho "venv-python $*" >> "$LOG"\\n' > "$3/bin/python"
  chmod +x "$3/bin/pip" "$3/bin/python"
fi
exit 0
""",
    "rm": '#!/bin/sh\necho "rm $*" >> "$LOG"\n',
}


def run_setup(tmp_path, **env):
    """setup.sh as the zip has it (the venv under tmp_path) with the fakes first on PATH -> (the
    CompletedProcess, the fakes' log lines)."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for name, text in FAKES.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    script = tmp_path / "setup.sh"
    template = (REPO / "autograder" / "integrations" / SCRIPTS["setup.sh"]).read_text()
    script.write_text(filled(template, {"PY": "3.11", "VENV": str(tmp_path / "venv"), "LOCK": LOCK_FILE}))
    log = tmp_path / "log"
    log.touch()
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LOG": str(log),
                               "STATE": str(state), **env})
    return done, log.read_text().splitlines()


def test_setup_with_python_311_present_installs_no_ppa_tooling_and_cleans_apt(tmp_path):
    done, log = run_setup(tmp_path, PY311_PRESENT="1")
    assert done.returncode == 0, done.stderr
    assert not [line for line in log if "software-properties-common" in line or "add-apt-repository" in line]
    assert not [line for line in log if "python3.11" in line and line.startswith("apt-get")]
    assert "apt-get clean" in log and any(line.startswith("rm -rf /var/lib/apt/lists/") for line in log)
    pip = [line for line in log if line.startswith("pip ")]
    assert pip == [f"pip install -q --no-cache-dir --disable-pip-version-check --require-hashes --only-binary :all: "
                   f"-r /autograder/source/{LOCK_FILE}"]
    assert "venv-python -c import numpy, yaml, matplotlib" in log


def test_setup_takes_python_from_the_distribution_before_any_ppa(tmp_path):
    done, log = run_setup(tmp_path)
    assert done.returncode == 0, done.stderr
    assert any(line.startswith("apt-get install") and "python3.11-venv" in line for line in log)
    assert not [line for line in log if "software-properties-common" in line or "add-apt-repository" in line]


def test_setup_adds_deadsnakes_only_where_the_distribution_has_no_python_311(tmp_path):
    done, log = run_setup(tmp_path, NO_PY311="1")
    assert done.returncode == 0, done.stderr
    tooling = next(i for i, line in enumerate(log) if "software-properties-common" in line)
    ppa = log.index("add-apt-repository -y ppa:deadsnakes/ppa")
    last_python = max(i for i, line in enumerate(log) if "python3.11-venv" in line)
    assert tooling < ppa < last_python


def test_setup_fails_loudly_naming_the_step(tmp_path):
    done, log = run_setup(tmp_path, PY311_PRESENT="1", PIP_STATUS="3")
    assert done.returncode != 0
    assert f"setup.sh FAILED at step: install the packages of {LOCK_FILE}" in done.stderr
    assert "apt-get clean" not in log


@pytest.mark.parametrize("broken, complaint", [
    ({"score": "18"}, "results.score = '18': expected a number"),
    ({"score": 1, "visibility": "sometimes"}, "results.visibility = 'sometimes'"),
    ({"score": 1, "output_format": "markdown"}, "results.output_format = 'markdown'"),
    ({"score": 1, "scores": 2}, "results: unknown key 'scores'"),
    ({"tests": [{"name": "a", "score": 1}, {"name": "b"}]}, "no top-level score, and not every test has one"),
    ({"score": 1, "tests": [{"status": "ok"}]}, "tests[0].status = 'ok'"),
    ({"score": 1, "tests": [{"tags": ["a", 2]}]}, "tests[0].tags: 2 is not a string"),
    ({"score": 1, "tests": [{"output": "a\r\nb"}]}, "new lines must be Unix ones"),
    ({"score": True}, "results.score = True: expected a number"),
])
def test_the_specification_checker_rejects_what_gradescope_does(broken, complaint):
    assert any(complaint in p for p in problems(broken)), problems(broken)
    assert problems({"score": 0.0, "tests": [], "output": "x", "visibility": "visible",
                     "extra_data": {"any": ["thing"]}}) == []

