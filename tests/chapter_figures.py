"""The chapter's diagrams as pictures in its markdown, so that they show before any code runs.

    .venv/bin/python tests/chapter_figures.py      (then `make release`)

draws each diagram with seqlab.plots and stores it as a PNG attachment of its markdown cell in
source/lstm/lstm.ipynb (FIGURES: cell id, attachment name, drawing function, caption). The
drawing functions stay in seqlab.plots, so a student can redraw any of them in a cell.
tests/test_chapter_figures.py checks that the cells show them and that they are up to date.
"""
import base64
import io
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "source" / "lstm" / "lstm.ipynb"
DPI = 90

FIGURES = [
    ("de06d3676939", "unrolled_rnn.png", "draw_unrolled_rnn",
     "A recurrent network, folded (left) and unrolled over four steps (right): the same cell, "
     "with the same weights, at every step; the hidden state $h_t$ carries information from "
     "one step to the next."),
    ("0ab27c3cbe61", "lstm_cell.png", "draw_lstm_cell",
     "One LSTM step. The gates, left to right, are in the order of the $4H$ columns, "
     "$[\\,i \\mid f \\mid g \\mid o\\,]$. The cell state runs along the top, from $c_{t-1}$ to "
     "$c_t$: it is multiplied by the forget gate $f_t$ and receives $i_t \\odot g_t$; "
     "$h_t = o_t \\odot \\tanh(c_t)$ leaves at the bottom right."),
    ("5e0c2a7d91b4", "step_graph.png", "draw_step_graph",
     "The computational graph of one LSTM step: variables in boxes, operations in circles, the "
     "gates top to bottom in the order $[\\,i \\mid f \\mid g \\mid o\\,]$. The forward pass "
     "reads it left to right, the backward pass right to left; the gradient on $c_t$ is the sum "
     "of the two red paths, and the forget gate's branch, worked through below, is orange."),
]


def render(function_name):
    """The diagram as PNG bytes (no timestamp or version in the file)."""
    sys.path.insert(0, str(REPO / "source" / "lstm"))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from seqlab import plots
    fig = getattr(plots, function_name)()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white",
                metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def figure_cell(cell_id, name, function_name, caption, tags):
    return {"cell_type": "markdown", "id": cell_id, "metadata": {"tags": tags},
            "attachments": {name: {"image/png": base64.b64encode(render(function_name)).decode()}},
            "source": f"![{caption.split(':')[0].split('. ')[0]}](attachment:{name})\n\n*{caption}*"
            .splitlines(keepends=True)}


def main():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    by_id = {c["id"]: k for k, c in enumerate(nb["cells"])}
    for cell_id, name, function_name, caption in FIGURES:
        k = by_id[cell_id]
        nb["cells"][k] = figure_cell(cell_id, name, function_name, caption, ["chapter", "figure"])
    text = json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    NOTEBOOK.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
