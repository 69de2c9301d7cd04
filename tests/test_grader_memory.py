"""The grader's own memory is bounded whatever the student's process replies (issue 19, item 4).

A notebook whose every function returns four arrays of 60 MiB (240 MiB a reply, under the
wire's 256 MiB limit) is graded through the CLI, with an honest classmate, in one grading
process (--jobs 1): the grader's peak resident memory stays within GRADER_PEAK_MIB (it was
about 1 GiB when such replies were read, then handed to the reference and the comparisons)."""
import json
import subprocess
import sys

from assignments.lstm.samples import reference_cells, release, with_body
from autograder.process import sandbox
from autograder.samples import write_submission
from tests.conftest import REPO

GRADER_PEAK_MIB = 200
# The peak is VmHWM, this process image's own high-water mark: ru_maxrss would also count the
# image before exec, a fork of the pytest process (hundreds of MiB late in the suite).
PEAK = '''
import sys
from autograder.cli import main
try:
    main(sys.argv[1:])
finally:
    status = open("/proc/self/status").read()
    kib = int(status.split("VmHWM:", 1)[1].split()[0])
    print(f"grader peak: {kib // 1024} MiB", file=sys.stderr)
'''


def test_replies_at_the_reply_limit_leave_the_graders_memory_bounded(config, tmp_path):
    root, out = tmp_path / "submitted", tmp_path / "out"
    huge = {name: with_body(name, "return tuple(np.ones(7_800_000) for _ in range(4))") for name in reference_cells()}
    write_submission(root, "huge", "lstm", config.notebook, release(config, huge, ["import numpy as np"]))
    write_submission(root, "zz_honest", "lstm", config.notebook, release(config, reference_cells()))
    mode = ["--sandbox", "bubblewrap"] if sandbox.bubblewrap_works() else ["--sandbox", "none", "--unsandboxed"]
    done = subprocess.run([sys.executable, "-c", PEAK, "grade", str(root), "--assignment", "lstm", "--out", str(out),
                           "--no-gradebook", "--jobs", "1", *mode], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    peak = int(done.stderr.rsplit("grader peak: ", 1)[1].split()[0])
    assert peak < GRADER_PEAK_MIB, done.stderr
    huge_result = json.loads((out / "results" / "huge.json").read_text())
    assert huge_result["score"] == 0
    assert "over the limit" in huge_result["exercises"][1]["message"]
    assert json.loads((out / "results" / "zz_honest.json").read_text())["score"] == config.max_score
