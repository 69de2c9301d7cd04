"""The chapter's diagrams are pictures in its markdown (issue 23, item 8): they show before any
cell runs, in the source and in the release, they are the current drawings of seqlab.plots, and
they draw the gates in the order of the text, [i | f | g | o]."""
import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest

import chapter_figures as figures

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = [REPO / "source" / "lstm" / "lstm.ipynb", REPO / "release" / "lstm" / "lstm.ipynb"]


def source(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


@pytest.mark.parametrize("path", NOTEBOOKS, ids=["source", "release"])
def test_every_diagram_is_a_picture_in_the_markdown(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    by_id = {c["id"]: c for c in nb["cells"]}
    for cell_id, name, function_name, caption in figures.FIGURES:
        cell = by_id[cell_id]
        assert cell["cell_type"] == "markdown" and f"(attachment:{name})" in source(cell)
        png = base64.b64decode(cell["attachments"][name]["image/png"])
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and 10_000 < len(png) < 200_000
    # no code cell draws a diagram any more: nothing to run before the pictures show
    code = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "code")
    for _, _, function_name, _ in figures.FIGURES:
        assert f"plots.{function_name}" not in code


def test_the_pictures_are_the_current_drawings():
    import matplotlib.image as mpimg
    nb = json.loads(NOTEBOOKS[0].read_text(encoding="utf-8"))
    by_id = {c["id"]: c for c in nb["cells"]}
    for cell_id, name, function_name, _ in figures.FIGURES:
        stored = mpimg.imread(io.BytesIO(base64.b64decode(by_id[cell_id]["attachments"][name]["image/png"])))
        drawn = mpimg.imread(io.BytesIO(figures.render(function_name)))
        assert stored.shape == drawn.shape, (name, "run tests/chapter_figures.py, then make release")
        assert float(np.mean(np.abs(stored - drawn))) < 0.01, (name, "run tests/chapter_figures.py")


def _label_positions(fig, labels):
    found = {}
    for t in fig.axes[0].texts:
        if t.get_text() in labels:
            found[t.get_text()] = t.get_position()
    assert set(found) == set(labels), found
    return found


def test_the_lstm_cell_draws_the_gates_in_the_order_of_the_text():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from seqlab import plots
    labels = ["$i_t$", "$f_t$", "$g_t$", "$o_t$"]
    cell = _label_positions(plots.draw_lstm_cell(), labels)
    assert [cell[k][0] for k in labels] == sorted(cell[k][0] for k in labels)      # left to right
    graph = _label_positions(plots.draw_step_graph(), labels)
    assert [graph[k][1] for k in labels] == sorted((graph[k][1] for k in labels), reverse=True)  # top down
    plt.close("all")
