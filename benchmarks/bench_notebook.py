"""The source notebook (solutions filled in, demos included) run top to bottom in a real kernel,
as a student runs it after finishing the exercises. Goal: at most 120 s on 2 cores."""
import json
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "source" / "lstm"
GOAL_S = 120.0


def main():
    import nbformat
    from nbclient import NotebookClient

    print("\n== Notebook: source/lstm/lstm.ipynb top to bottom in a python3 kernel ==")
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp) / "lstm"
        shutil.copytree(SOURCE, where, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        nb = nbformat.read(where / "lstm.ipynb", as_version=4)
        client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(where)}})
        cell_seconds = []
        started = time.perf_counter()
        with client.setup_kernel():
            kernel_ready = time.perf_counter() - started
            for index, cell in enumerate(nb.cells):
                t0 = time.perf_counter()
                client.execute_cell(cell, index)
                cell_seconds.append((time.perf_counter() - t0, index, cell))
        total = time.perf_counter() - started

    errors = sum(1 for _, _, c in cell_seconds if c.cell_type == "code"
                 for o in c.outputs if o.output_type == "error")
    demo = sum(s for s, _, c in cell_seconds if "demo" in c.metadata.get("tags", []))
    print(f"kernel start              : {kernel_ready:7.2f} s")
    print(f"whole notebook            : {total:7.2f} s   (goal <= {GOAL_S:.0f} s)"
          + ("" if errors == 0 else f"  [{errors} cell(s) raised]"))
    print(f"of which demo cells       : {demo:7.2f} s")
    print(f"other cells (graded path) : {total - kernel_ready - demo:7.2f} s")
    print("slowest cells:")
    for seconds, index, cell in sorted(cell_seconds, key=lambda t: -t[0])[:5]:
        first = "".join(cell.source).strip().splitlines()[:1] or [""]
        tags = ",".join(cell.metadata.get("tags", []))
        print(f"  cell {index:3d} {seconds:7.2f} s  [{tags}] {first[0][:60]}")
    print(json.dumps({"notebook_s": round(total, 2), "demo_s": round(demo, 2), "errors": errors,
                      "goal_s": GOAL_S}))


if __name__ == "__main__":
    main()
