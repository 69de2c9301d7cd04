"""The chapter around the exercises: seqlab.plots draws without warnings, seqlab.text
round-trips and samples, seqlab.experiments shows the vanishing gradient of the vanilla RNN
against the reference LSTM, and the notebook's prose is complete, ordered and sourced."""
import contextlib
import io
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

import solutions.lstm as ref
from seqlab import experiments, text

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "source" / "lstm" / "lstm.ipynb"


def cell_text(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


@pytest.fixture(scope="module")
def notebook():
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def markdown(notebook):
    return "\n".join(cell_text(c) for c in notebook["cells"] if c["cell_type"] == "markdown")


# ------------------------------------------------------------------ imports

def test_seqlab_imports_only_numpy():
    code = ("import sys, seqlab, seqlab.plots, seqlab.text, seqlab.experiments;"
            "bad = [m for m in ('matplotlib', 'scipy', 'torch', 'pandas') if m in sys.modules];"
            "print(bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO / "source" / "lstm")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------ plots

@pytest.fixture(scope="module")
def plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    yield plt
    plt.close("all")


def _draw(plt, fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = fn(*args, **kwargs)
        fig.canvas.draw()                       # renders text and mathtext: missing glyphs warn
    assert len(fig.axes) >= 1
    plt.close(fig)
    return fig


@pytest.mark.parametrize("T", [2, 4, 7])
def test_unrolled_rnn_diagram(plt, T):
    from seqlab import plots
    _draw(plt, plots.draw_unrolled_rnn, T=T)


def test_lstm_cell_diagram(plt):
    from seqlab import plots
    fig = _draw(plt, plots.draw_lstm_cell)
    labels = " ".join(t.get_text() for t in fig.axes[0].texts)
    for symbol in ("c_{t-1}", "h_{t-1}", "x_t", "f_t", "i_t", "g_t", "o_t", "odot", "tanh"):
        assert symbol in labels, symbol


def test_loss_and_gradient_plots(plt):
    from seqlab import plots
    rng = np.random.default_rng(0)
    hist = {"loss": list(np.exp(-np.linspace(0, 3, 100)) + 0.01 * rng.random(100)),
            "grad_norm": list(rng.random(100))}
    fig = _draw(plt, plots.plot_losses, {"a": hist, "b": hist["grad_norm"]}, smooth=10,
                baseline=(1 / 6, "mean"))
    assert len(fig.axes[0].lines) == 3
    fig = _draw(plt, plots.plot_gradient_norms, {"rnn": 0.5 ** np.arange(50)[::-1],
                                                 "lstm": np.ones(50)})
    assert fig.axes[0].get_yscale() == "log"


# ------------------------------------------------------------------ text

def test_text_is_public_domain_sonnets():
    s = text.load_text()
    assert 5_000 < len(s.encode("utf-8")) < 20_000
    assert s.isascii()
    assert "Shall I compare thee to a summer's day?" in s
    readme = (REPO / "source" / "lstm" / "data" / "README.md").read_text()
    assert "public domain" in readme and "1609" in readme


def test_vocabulary_round_trip():
    s = text.load_text()
    vocab = text.Vocabulary(s)
    assert len(vocab) == len(set(s))
    assert vocab.chars == sorted(vocab.chars)
    ids = vocab.encode(s)
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < len(vocab)
    assert vocab.decode(ids) == s
    with pytest.raises(KeyError):
        vocab.encode("\u00e9")


def test_random_batch_is_next_character():
    s = text.load_text()
    vocab = text.Vocabulary(s)
    ids = vocab.encode(s)
    x, y = text.random_batch(ids, 5, 12, len(vocab), np.random.default_rng(0))
    assert x.shape == (5, 12, len(vocab)) and y.shape == (5, 12) and y.dtype == np.int64
    assert np.all(x.sum(axis=-1) == 1)
    inputs = x.argmax(axis=-1)
    assert np.all(inputs[:, 1:] == y[:, :-1])             # the target of t is the input of t+1
    for n in range(5):
        window = vocab.decode(np.concatenate([inputs[n], y[n, -1:]]))
        assert window in s
    with pytest.raises(ValueError):
        text.random_batch(ids[:5], 2, 10, len(vocab), np.random.default_rng(0))


def test_one_hot():
    out = text.one_hot(np.array([[0, 2], [1, 1]]), 3)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 1], [0, 0, 1])


def test_sampling_with_injected_step():
    s = "abcabcabcabcabcabc"
    vocab = text.Vocabulary(s)
    V, H = len(vocab), 4
    rng = np.random.default_rng(0)
    from seqlab import models
    params = models.init_params(V, H, V, 4, rng)
    calls = []

    def step(x, prev_h, prev_c, Wx, Wh, b):
        calls.append(x.shape)
        return ref.lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)

    out = text.sample(step, params, vocab, prime="ab", length=20, temperature=0.7,
                      rng=np.random.default_rng(1))
    assert out.startswith("ab") and len(out) == 22 and set(out) <= set(s)
    assert calls == [(1, V)] * (1 + 20)                   # prime warm-up, then one step per character
    again = text.sample(ref.lstm_step_forward, params, vocab, prime="ab", length=20,
                        temperature=0.7, rng=np.random.default_rng(1))
    assert again == out
    # A near-zero temperature picks the most likely character every time.
    params["b_out"] = np.array([0.0, 5.0, 0.0])
    params["W_out"] = np.zeros_like(params["W_out"])
    assert text.sample(ref.lstm_step_forward, params, vocab, "a", 10, 1e-3) == "a" + "b" * 10


def test_char_model_learns_a_little():
    s = text.load_text()[:3000]
    params, vocab, hist = experiments.train_char_model(ref.lstm_forward, ref.lstm_backward,
                                                       ref.clip_grad_norm, text=s, H=16, T=16,
                                                       batch=8, steps=60, lr=2e-2)
    assert hist["loss"][0] == pytest.approx(np.log(len(vocab)), rel=0.1)
    assert np.mean(hist["loss"][-10:]) < hist["loss"][0] - 0.5
    assert params["Wx"].shape == (len(vocab), 64)


# ------------------------------------------------------------------ experiments

def test_vanishing_gradient_rnn_vs_reference_lstm():
    T = 60
    rnn = experiments.rnn_gradient_norms(T=T)
    lstm = experiments.lstm_gradient_norms(ref.lstm_step_forward, ref.lstm_step_backward, T=T)
    keep = experiments.lstm_gradient_norms(ref.lstm_step_forward, ref.lstm_step_backward, T=T,
                                           forget_bias=3.0)
    for norms in (rnn, lstm, keep):
        assert norms.shape == (T,) and np.all(np.isfinite(norms)) and np.all(norms > 0)
        assert norms[-1] == pytest.approx(1.0)
    assert rnn[0] < 1e-10                                  # vanished
    assert lstm[0] / rnn[0] > 1e5                          # the cell state carries it much further
    assert keep[0] > 1e-2                                  # forget gates near 1: barely decays
    # the RNN decays steadily: every 10 steps back lose a large factor
    assert np.all(rnn[:-10:10] < 0.1 * rnn[10::10])


def test_available_reports_missing_functions():
    def missing(*args, **kwargs):
        raise NotImplementedError()

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert not experiments.available(lstm_forward=ref.lstm_forward, lstm_backward=missing)
    assert out.getvalue() == ("This demo needs lstm_forward and lstm_backward from Section 3.4; "
                              "come back when their checks pass.\n")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert experiments.available(lstm_forward=ref.lstm_forward, lstm_backward=ref.lstm_backward,
                                     lstm_step_forward=ref.lstm_step_forward,
                                     lstm_step_backward=ref.lstm_step_backward,
                                     clip_grad_norm=ref.clip_grad_norm)
    assert out.getvalue() == ""


def test_adding_problem_comparison_runs_short():
    res = experiments.adding_problem_comparison(ref.lstm_forward, ref.lstm_backward,
                                                clip_fn=ref.clip_grad_norm, T=10, steps=20)
    assert set(res) == {"LSTM", "vanilla RNN", "baseline"}
    assert res["baseline"] == pytest.approx(1 / 6, rel=0.15)
    for name in ("LSTM", "vanilla RNN"):
        assert len(res[name]["loss"]) == len(res[name]["grad_norm"]) == 20
        assert np.isfinite(res[name]["test_mse"])


# ------------------------------------------------------------------ the notebook's prose

SEED_LEFTOVERS = ["~", "Callie", "Wes's", "TODO", "IDK", "Oreos", "Otter Pop", "IPA",
                  "type something here", "Math Function here", "TraditionalRNNArchitecture",
                  "some *blue* text", "Stanford University"]


def test_no_seed_placeholders(markdown):
    for bad in SEED_LEFTOVERS:
        assert bad not in markdown, bad


def test_history_is_corrected_and_sourced(markdown):
    for source in ["Rumelhart, D. E., Hinton, G. E., & Williams, R. J. (1986)", "Nature*, 323",
                   "Elman, J. L. (1990)", "Hochreiter, S. (1991)", "Bengio, Y., Simard, P., & Frasconi, P. (1994)",
                   "Hochreiter, S., & Schmidhuber, J. (1997). Long short-term memory. *Neural Computation*, 9(8)",
                   "Gers, F. A., Schmidhuber, J., & Cummins, F. (2000)", "Vaswani", "Cho, K.",
                   "Werbos, P. J. (1990)"]:
        assert source in markdown, source
    assert "no forget gate" in markdown.lower() or "**no forget gate**" in markdown
    assert "San Diego" in markdown                          # Rumelhart's affiliation in 1986


def test_every_author_year_citation_is_in_the_references(markdown):
    body, refs = markdown.split("## References", 1)
    cited = set(re.findall(r"\b([A-Z][A-Za-z\u00c0-\u017f-]+)(?: et al\.)?,? (?:\w+ )?\(?((?:19|20)\d\d)\)?", body))
    ref_keys = set(re.findall(r"^\* ([A-Z][^\s,]+),.*?\(((?:19|20)\d\d)\)", refs, flags=re.M))
    authors_in_refs = {a for a, _ in ref_keys}
    missing = [(a, y) for a, y in cited if a in authors_in_refs and (a, y) not in ref_keys
               and not any(a in line and y in line for line in refs.splitlines())]
    assert not missing, missing


def test_parameter_counts_in_the_table(markdown):
    D, H = 128, 256
    assert f"{H * (D + H + 1):,}" in markdown
    assert f"{4 * H * (D + H + 1):,}" in markdown
    assert f"{3 * H * (D + H + 1):,}" in markdown
    assert f"{12 * H * H + 13 * H:,}" in markdown
    for formula in ("H(D + H + 1)", "4H(D + H + 1)", "3H(D + H + 1)", "12d^2 + 13d", "4H(D + H + 2)"):
        assert formula in markdown, formula


def test_transformer_layer_count_formula():
    torch = pytest.importorskip("torch")
    d = 64
    layer = torch.nn.TransformerEncoderLayer(d, 4, dim_feedforward=4 * d)
    assert sum(p.numel() for p in layer.parameters()) == 12 * d * d + 13 * d
    D, H = 5, 7
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(torch.nn.LSTM(D, H)) == 4 * H * (D + H + 2)
    assert count(torch.nn.GRU(D, H)) == 3 * H * (D + H + 2)
    assert count(torch.nn.RNN(D, H)) == H * (D + H + 2)


def test_sections_in_order(notebook):
    heads = [cell_text(c).split("\n")[0] for c in notebook["cells"]
             if c["cell_type"] == "markdown" and cell_text(c).startswith("## 3.")]
    assert [h[3:6] for h in heads] == ["3.1", "3.2", "3.3", "3.4", "3.5", "3.6"]
    # every section has content of its own before the next heading
    tags = [t for c in notebook["cells"] for t in c["metadata"].get("tags", [])
            if t.startswith("section-")]
    assert tags == [f"section-3.{k}" for k in range(1, 7)]
    kinds = []
    for c in notebook["cells"]:
        t = [t for t in c["metadata"].get("tags", []) if t.startswith("section-")]
        kinds.append(t[0] if t else None)
    positions = [k for k, t in enumerate(kinds) if t]
    assert all(b - a > 1 for a, b in zip(positions, positions[1:]))
    assert positions[-1] < len(kinds) - 1


def test_written_questions(notebook):
    manual = yaml.safe_load((REPO / "grading.yml").read_text())["assignments"]["lstm"]["manual"]
    cells = notebook["cells"]
    found = {}
    for k, c in enumerate(cells):
        meta = c["metadata"].get("nbgrader", {})
        if meta.get("grade_id") in manual:
            assert c["cell_type"] == "markdown"
            assert meta["solution"] is True and meta["grade"] is True and meta["locked"] is False
            found[meta["grade_id"]] = meta["points"]
            question = cells[k - 1]
            qmeta = question["metadata"].get("nbgrader", {})
            assert question["cell_type"] == "markdown"
            assert qmeta.get("locked") is True and not qmeta.get("solution") and not qmeta.get("grade")
            assert f"({meta['points']} points)" in cell_text(question)
    assert found == manual


def test_demo_cells_and_fast_cells(notebook):
    """Training and plotting cells are tagged demo; untagged code never touches matplotlib."""
    for c in notebook["cells"]:
        if c["cell_type"] != "code":
            continue
        src = cell_text(c)
        is_demo = "demo" in c["metadata"].get("tags", [])
        heavy = any(s in src for s in ("plots.", "matplotlib", "experiments.", "chartext."))
        if heavy:
            assert is_demo, src[:120]
        if is_demo and "experiments." in src:
            assert "experiments.available(" in src or "in globals()" in src, src[:120]
        if is_demo:   # otter (Gradescope) runs every cell not tagged otter_ignore
            assert "otter_ignore" in c["metadata"]["tags"], src[:120]


def test_gradient_check_cell_is_a_demo(notebook):
    """The students' own gradient check costs ~0.3 s a submission and earns no points."""
    cells = [c for c in notebook["cells"] if "gradcheck" in c["metadata"].get("tags", [])]
    assert len(cells) == 1 and "demo" in cells[0]["metadata"]["tags"]


def test_cell_ids_unique(notebook):
    ids = [c["id"] for c in notebook["cells"]]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------ issue 14: the lesson

def cells_by_id(notebook):
    return {c["id"]: c for c in notebook["cells"]}


def strip_details(text):
    return re.sub(r"<details>.*?</details>", "", text, flags=re.S)


def strip_solution(text):
    return re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "", text, flags=re.S)


def exercise5_cells(notebook):
    """The cells of Exercise 5, from its heading to its answer cell (the check cell is locked)."""
    cells = notebook["cells"]
    start = next(k for k, c in enumerate(cells) if cell_text(c).startswith("### Exercise 5"))
    end = next(k for k, c in enumerate(cells)
               if c["metadata"].get("nbgrader", {}).get("grade_id") == "lstm_step_backward")
    return cells[start:end + 1]


# Formulas of the derivatives that the student derives: the other gates and the affine part.
OTHER_GATES = [
    r"\\delta\s*a\^\{\((i|g|o)\)\}(_t)?\s*=",          # \delta a^{(i)}_t = ...
    r"\\delta\s*(i|g|o)_t\s*=",                        # \delta i_t = ...
    r"\b(di|dg|do|da_i|da_g|da_o)\s*=",                # di = ..., da_o = ...
    r"\bdc\s*\*\s*[gi]\b", r"\bdnext_h\s*\*\s*tanh",  # code of the i, g, o gradients
    r"1\s*-\s*g\s*\*\*?\s*g", r"1\s*-\s*g_t\^2", r"o_t\s*\(1\s*-\s*o_t\)", r"i_t\s*\(1\s*-\s*i_t\)",
    r"\\delta\s*a_t\s*W_x\^\{?\\top", r"x_t\^\{?\\top\}?\s*\\delta", r"\bda\s*@", r"@\s*W[xh]\.T",
    r"\.T\s*@\s*da", r"sum\(axis",
]


def test_exercise5_is_a_derivation_with_collapsed_hints(notebook):
    cells = exercise5_cells(notebook)
    visible = "\n".join(strip_details(strip_solution(cell_text(c))) for c in cells)
    for pattern in OTHER_GATES:
        assert not re.search(pattern, visible), f"Exercise 5 shows {pattern!r} outside <details>"
    # ... but it does give the method and the one worked example
    assert "both paths" in visible.lower() or "Both paths" in visible
    assert r"\delta c_t = \mathtt{dnext\_c} + \mathtt{dnext\_h} \odot o_t" in visible
    assert r"\delta a^{(f)}_t = \delta c_t \odot c_{t-1} \odot f_t \odot (1 - f_t)" in visible
    # the hints are progressive and collapsed; even opened, they never state another gate's formula
    markdown = "\n".join(cell_text(c) for c in cells if c["cell_type"] == "markdown")
    hints = re.findall(r"<details>(.*?)</details>", markdown, flags=re.S)
    assert len(hints) >= 4 and "<details open" not in markdown
    assert all("<summary>" in h for h in hints)
    for pattern in OTHER_GATES[:3]:
        assert not re.search(pattern, markdown), f"a hint states {pattern!r}"
    assert "`dnext_h`, not $\\delta c_t$" in hints[0]                 # the output gate's gradient
    assert "numerical_gradient" in hints[-1] and "relative_error" in hints[-1]
    # the computational graph is drawn in the exercise, as a picture in the markdown
    graph = [c for c in cells if "attachment:step_graph.png" in cell_text(c)]
    assert len(graph) == 1 and graph[0]["cell_type"] == "markdown"


def test_exercise5_last_hint_finds_the_wrong_block(notebook):
    """The last hint's code, run as a student would, passes a correct backward pass and points
    at the gates a dropped dnext_c path breaks (i, f, g) but not at the output gate."""
    cells = exercise5_cells(notebook)
    markdown = "\n".join(cell_text(c) for c in cells if c["cell_type"] == "markdown")
    code = re.findall(r"```python\n(.*?)```", markdown, flags=re.S)[-1]

    def run(backward):
        ns = {"np": np, "lstm_step_forward": ref.lstm_step_forward, "lstm_step_backward": backward}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(code, ns)
        return {line.split()[0]: float(line.split()[1]) for line in out.getvalue().splitlines()}

    assert max(run(ref.lstm_step_backward).values()) < 1e-8
    dropped = run(lambda dh, dc, cache: ref.lstm_step_backward(dh, np.zeros_like(dc), cache))
    assert min(dropped[g] for g in "ifg") > 1e-2 and dropped["o"] < 1e-8


def test_exercise5_derivation_holds_in_the_release():
    release = json.loads((REPO / "release" / "lstm" / "lstm.ipynb").read_text(encoding="utf-8"))
    visible = "\n".join(strip_details(cell_text(c)) for c in exercise5_cells(release))
    for pattern in OTHER_GATES:
        assert not re.search(pattern, visible), pattern


def test_step_graph(plt):
    from seqlab import plots
    fig = _draw(plt, plots.draw_step_graph)
    labels = " ".join(t.get_text() for t in fig.axes[0].texts)
    for symbol in ("c_{t-1}", "c_t", "h_t", "f_t", "i_t", "g_t", "o_t", "dnext_c", "dnext_h",
                   "odot", "tanh", "worked"):
        assert symbol in labels, symbol


def test_gradient_plot_with_cell_panel(plt):
    from seqlab import plots
    fig = _draw(plt, plots.plot_gradient_norms, {"a": 0.5 ** np.arange(20.0), "b": np.ones(20)},
                cell_norms={"b": np.ones(20), "c": np.ones(20)})
    assert len(fig.axes) == 2 and all(ax.get_yscale() == "log" for ax in fig.axes)
    colour = {l.get_label(): l.get_color() for ax in fig.axes for l in ax.lines}
    assert fig.axes[0].lines[1].get_color() == fig.axes[1].lines[0].get_color() == colour["b"]


def test_text_heatmap_html():
    from seqlab import plots
    out = plots.text_heatmap_html("a<b\nc", [1.0, -1.0, 0.0, 0.5, 0.0])
    assert "&lt;" in out and "<br>" in out and out.count("<span") == 5
    assert "rgb(33, 102, 172)" in out and "rgb(192, 57, 43)" in out
    with pytest.raises(ValueError):
        plots.text_heatmap_html("ab", [1.0])


# ------------------------------------------------------------------ truncated BPTT helpers

def test_batchify_and_chunks_continue_each_stream():
    ids = np.arange(103)
    streams = text.batchify(ids, 4)
    assert streams.shape == (4, 25) and streams.dtype == np.int64
    np.testing.assert_array_equal(streams[1], np.arange(25, 50))
    x1, y1 = text.chunk(streams, 0, 5, 103)
    x2, y2 = text.chunk(streams, 5, 5, 103)
    assert x1.shape == (4, 5, 103) and y1.shape == (4, 5)
    np.testing.assert_array_equal(x1.argmax(-1)[:, 1:], y1[:, :-1])
    np.testing.assert_array_equal(y1[:, -1], x2.argmax(-1)[:, 0])     # row n goes on where it stopped
    with pytest.raises(ValueError):
        text.chunk(streams, 20, 5, 103)
    with pytest.raises(ValueError):
        text.batchify(ids[:5], 4)


def test_split_text_and_line_position():
    s = text.load_text()
    train, valid = text.split_text(s, 0.1)
    assert train + valid == s and valid.startswith("\n") and 0.05 < len(valid) / len(s) < 0.2
    np.testing.assert_array_equal(text.line_position("ab\ncde\n\nf"), [0, 1, 2, 0, 1, 2, 3, 0, 0])


# ------------------------------------------------------------------ Section 3.5: quoted numbers

def sci(x):
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa} \\times 10^{{{int(exponent)}}}"


def pct(x):
    return f"{x:.0%}".replace("%", " %")


@pytest.fixture(scope="module")
def gradient_flow():
    flows = {bias: experiments.lstm_gradient_flow(ref.lstm_step_forward, ref.lstm_step_backward,
                                                  T=100, forget_bias=bias) for bias in (1.0, 3.0)}
    return experiments.rnn_gradient_norms(T=100), flows


def test_gradient_flow_against_finite_differences():
    """||dL/dh_t|| and ||dL/dc_t|| of lstm_gradient_flow equal centered differences of the loss
    sum(dL/dh_T * h_T) under perturbations of h_t and c_t in a forward pass run step by step."""
    from seqlab import models
    T, N, D, H, seed, bias = 7, 2, 4, 3, 5, 3.0
    flow = experiments.lstm_gradient_flow(ref.lstm_step_forward, ref.lstm_step_backward, T=T, N=N,
                                          D=D, H=H, seed=seed, forget_bias=bias)
    rng = np.random.default_rng(seed)                     # the same stream as lstm_gradient_flow
    models.init_params(D, H, 1, 1, rng)
    x = rng.normal(size=(N, T, D))
    dhT = rng.normal(size=(N, H))
    dhT /= np.linalg.norm(dhT)
    p = models.init_params(D, H, 1, 4, np.random.default_rng(seed + 1))
    b = p["b"].copy()
    b[H:2 * H] = bias

    def loss(at, which, delta):
        h, c = np.zeros((N, H)), np.zeros((N, H))
        for t in range(T):
            if t == at and which == "c":                  # c_t moved before h_t is computed from it
                i, f, g, o = ref.lstm_gates(x[:, t], h, p["Wx"], p["Wh"], b)
                c = f * c + i * g + delta
                h = o * np.tanh(c)
                continue
            h, c, _ = ref.lstm_step_forward(x[:, t], h, c, p["Wx"], p["Wh"], b)
            if t == at:
                h = h + delta
        return float(np.sum(dhT * h))

    eps = 1e-6
    for which in ("h", "c"):
        for t in range(T):
            grad = np.zeros((N, H))
            for k in np.ndindex(N, H):
                e = np.zeros((N, H))
                e[k] = eps
                grad[k] = (loss(t, which, e) - loss(t, which, -e)) / (2 * eps)
            assert np.linalg.norm(grad) == pytest.approx(flow[which][t], rel=1e-6), (which, t)
    assert flow["cell_only"][-1] == pytest.approx(flow["c"][-1])


def test_experiment1_prose_quotes_what_the_code_computes(notebook, gradient_flow):
    rnn_norms, flows = gradient_flow
    prose = cell_text(cells_by_id(notebook)["43473edf92ea"])
    rnn = experiments.decay_summary(rnn_norms)
    l1, l3 = (experiments.decay_summary(flows[b]["h"]) for b in (1.0, 3.0))
    c1, c3 = (experiments.decay_summary(flows[b]["c"]) for b in (1.0, 3.0))
    alone1, alone3 = (experiments.decay_summary(flows[b]["cell_only"]) for b in (1.0, 3.0))
    quoted = [
        f"median factor of {rnn['median_step']:.2f}", f"between {rnn['low']:.2f} and {rnn['high']:.2f}",
        sci(rnn["at_T_minus_50"]) + "$ of it is left at $t = 50$", sci(rnn["at_1"]) + "$ at $t = 1$",
        f"(×{l1['first_step']:.2f})", f"×{l1['median_step']:.2f} per step ({l1['low']:.2f} to {l1['high']:.2f})",
        sci(l1["at_1"]) + "$ at $t = 1$", f"mean forget gate, {flows[1.0]['forget'].mean():.2f}",
        f"×{alone1['median_step']:.2f} per step and would leave only ${sci(alone1['at_1'])}$",
        f"now {flows[3.0]['forget'].mean():.2f} on average", f"(×{l3['first_step']:.2f})",
        f"smallest at $t = {l3['argmin']}$", f"by ×{l3['growth']:.3f} per step, to ${l3['at_1']:.1f}$",
        f"passes {alone3['median_step']:.2f}", f"(mean {flows[3.0]['slope'][0]:.2f} at $t = 1$)",
        f"only {flows[3.0]['slope'][-1]:.2f} at $t = 100$", f"×{c1['median_step']:.2f} per step with bias 1",
        f"up to ${c3['at_1']:.1f}$ at $t = 1$ with bias 3",
    ]
    for text_ in quoted:
        assert text_ in prose, text_
    # the words around the numbers
    assert round(1 / l1["first_step"]) == 7 and "a factor of about seven" in prose
    assert f"{sci(l1['at_1'] / rnn['at_1'])}$ times the RNN's" in prose and "nearly" not in prose
    assert abs(rnn["median_step"] - 1 / np.sqrt(3)) < 0.02
    assert l3["at_1"] > 1.0 > l3["at_T_minus_50"]       # more than at the loss; smallest in between
    assert l3["growth"] > 1 and rnn["argmin"] == 1 and l1["argmin"] == 1
    assert "does not shrink at all" not in prose


@pytest.fixture(scope="module")
def adding_run():
    res = experiments.adding_problem_comparison(ref.lstm_forward, ref.lstm_backward,
                                                clip_fn=ref.clip_grad_norm)
    return res, experiments.adding_summary(res)


def test_experiment2_prose_quotes_what_the_code_computes(notebook, adding_run):
    res, s = adding_run
    cells = cells_by_id(notebook)
    loss_prose, norm_prose = cell_text(cells["93bea456ee37"]), cell_text(cells["d4aa2bf432c4"])
    assert s["baseline"] == 1 / 6 and "$1/6$" in loss_prose
    for text_ in (f"test MSE {s['test_mse']['vanilla RNN']:.3f}",
                  f"whose variance is {s['test_variance']:.3f}, always predicting the mean scores "
                  f"{s['test_variance']:.3f}",
                  f"below a tenth of the baseline, $1/60$, at step {s['solved_step']}",
                  f"test MSE of ${sci(s['test_mse']['LSTM'])}$"):
        assert text_ in loss_prose, text_
    lstm_late = [k for k in s["clipped_steps"]["LSTM"] if k > 10]
    early = {name: sum(k <= 10 for k in s["clipped_steps"][name]) for name in ("LSTM", "vanilla RNN")}
    for text_ in (f"above the LSTM's at {pct(s['rnn_above'])} of the steps",
                  f"its median is {s['median_norm']['vanilla RNN']:.2f} against the LSTM's {s['median_norm']['LSTM']:.2f}",
                  f"{pct(s['output_share']['vanilla RNN'])} of the RNN's squared gradient norm",
                  f"against {pct(s['output_share']['LSTM'])} for the LSTM",
                  f"active at {s['clipped']['LSTM']} of the LSTM's 800 steps and at {s['clipped']['vanilla RNN']} of the RNN's",
                  f"{early['LSTM']} and {early['vanilla RNN']} of them in the first ten steps",
                  f"other {len(lstm_late)} clipped steps all fall between steps {lstm_late[0]} and "
                  f"{lstm_late[-1]}, where its loss starts to fall",
                  f"comes at step {s['peak_step']['LSTM']}"):
        assert text_ in norm_prose, text_
    assert lstm_late[-1] - lstm_late[0] < 20
    assert s["peak_step"]["LSTM"] in lstm_late and lstm_late[-1] < s["solved_step"]
    assert s["rnn_above"] > 0.5 and "stays small" not in norm_prose
    assert s["test_mse"]["LSTM"] < 0.01 < s["baseline"] * 0.9 < s["test_mse"]["vanilla RNN"]


def test_forget_bias_in_training_prose_quotes_what_the_code_computes(notebook, adding_run):
    res, s = adding_run
    prose = cell_text(cells_by_id(notebook)["0f6d3b1e8a47"])
    code = cell_text(cells_by_id(notebook)["e9a07c4d2b38"])
    assert "forget_bias=0.0" in code and 'adding["LSTM"]' in code and "lstm_forward, lstm_backward" in code
    one = experiments.adding_problem_comparison(ref.lstm_forward, ref.lstm_backward, clip_fn=ref.clip_grad_norm,
                                                forget_bias=1.0, lstm_only=True, steps=30)["LSTM"]
    assert one["loss"] == res["LSTM"]["loss"][:30]           # bias 1 is Experiment 2's run: same start and batches
    zero = experiments.adding_problem_comparison(ref.lstm_forward, ref.lstm_backward, clip_fn=ref.clip_grad_norm,
                                                 forget_bias=0.0, lstm_only=True)["LSTM"]
    step0, step1 = experiments.solved_step(zero["loss"]), experiments.solved_step(res["LSTM"]["loss"])
    assert step1 == s["solved_step"] and step0 > step1
    assert f"until step {step0} to bring its training loss below a tenth of the baseline, against step {step1}" in prose
    assert (f"test MSE of ${sci(zero['test_mse'])}$ against ${sci(res['LSTM']['test_mse'])}$") in prose
    assert zero["test_mse"] > res["LSTM"]["test_mse"]


# ------------------------------------------------------------------ Section 3.6: the demo's numbers

@pytest.fixture(scope="module")
def char_demo(notebook):
    """The notebook's character-model cells (tag char-model) run in-process on the solution
    blocks, as they run in the solved notebook."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ns = {"np": np}
    for c in notebook["cells"]:
        meta = c["metadata"].get("nbgrader", {})
        if c["cell_type"] == "code" and meta.get("solution"):
            exec(compile(cell_text(c), meta["grade_id"], "exec"), ns)
    exec("from seqlab import plots", ns)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for c in notebook["cells"]:
            if "char-model" in c["metadata"].get("tags", []):
                exec(compile(cell_text(c), c["id"], "exec"), ns)
    plt.close("all")
    return ns, out.getvalue()


def test_char_demo_cells_use_the_students_step_functions(notebook):
    cells = [c for c in notebook["cells"] if "char-model" in c["metadata"].get("tags", [])]
    assert len(cells) >= 4
    code = "\n".join(cell_text(c) for c in cells)
    for name in ("lstm_step_forward(", "lstm_step_backward(", "clip_grad_norm("):
        assert name in code, name
    assert "solutions" not in code and "ref." not in code
    for c in cells:
        assert {"demo", "otter_ignore"} <= set(c["metadata"]["tags"])


def test_char_demo_prose_quotes_what_the_code_computes(notebook, char_demo):
    ns, out = char_demo
    cells = cells_by_id(notebook)
    prose = cell_text(cells["e4b7a19c3d05"])
    untrained = float(re.search(r"untrained ([0-9.]+)", out).group(1))
    unigram = float(re.search(r"frequencies alone ([0-9.]+)", out).group(1))
    trained = float(re.search(r"your trained LSTM ([0-9.]+)", out).group(1))
    train_ppl = float(np.exp(np.mean(ns["char_losses"][-100:])))
    passes = 500 // ((ns["streams"].shape[1] - 1) // ns["T"])
    for text_ in (f"falls from {untrained:.1f} before training to {trained:.1f} after it",
                  f"the {unigram:.1f} of predicting", f"keeps falling to the end, to {train_ppl:.1f}",
                  f"{passes} passes over it"):
        assert text_ in prose, text_
    assert abs(untrained - len(ns["vocab"])) < 1 and trained < unigram < untrained
    assert train_ppl < trained                                  # overfitting, as the prose says
    best = re.search(r"held-out perplexity lowest at step (\d+): ([0-9.]+); at step 500: ([0-9.]+)", out)
    best_step, lowest, last = int(best.group(1)), float(best.group(2)), float(best.group(3))
    assert f"is lowest at step {best_step} ({lowest:.2f})" in prose and f"{last:.2f} at step 500" in prose
    assert f"From about step {best_step} on" in prose
    assert 100 < best_step < 500 and lowest < last                # the held-out curve turns up
    held = ns["held_out"]
    assert sorted(held) == list(range(0, 501, 50)) and min(held, key=held.get) == best_step
    assert abs(np.exp(held[500]) - trained) < 0.05
    match = re.search(r"r = (-?[0-9.]+) \(the median \|r\| over all 64 units is ([0-9.]+)\)", out)
    inside = cell_text(cells["b9e25c0f4a18"])
    assert f"reaches $r = {match.group(1)}$" in inside
    assert f"median $|r|$ over all 64 units is {match.group(2)}" in inside
    assert abs(float(match.group(1))) > 0.7
    assert "two sonnets" in cell_text(cells["191e2ee261d0"])
    assert ns["valid_text"].count("\n\n") >= 2


def test_truncated_bptt_chunk_gradient_is_exact_inside_the_chunk(char_demo):
    """chunk_loss's gradients equal full BPTT (lstm_backward) on the chunk when the carried state
    is zero: the truncation only drops what would flow into the previous chunk."""
    ns, _ = char_demo
    rng = np.random.default_rng(3)
    from seqlab import models
    V, H = ns["V"], 8
    params = models.init_params(V, H, V, 4, rng)
    x, y = text.chunk(ns["streams"], 0, 6, V)
    saved_H = ns["H"]
    loss, grads, h, c = ns["chunk_loss"](params, x, y, np.zeros((x.shape[0], H)),
                                         np.zeros((x.shape[0], H)))
    model = models.SequenceModel(params, ref.lstm_forward, ref.lstm_backward, readout="every")
    loss2, grads2 = model.loss_and_grads(x, y)
    assert loss == pytest.approx(loss2, rel=1e-12)
    for k in grads2:
        np.testing.assert_allclose(grads[k], grads2[k], rtol=1e-9, atol=1e-12)
    assert ns["H"] == saved_H


# ------------------------------------------------------------------ drafting leftovers, facts

def test_no_drafting_leftovers(markdown):
    for bad in ("corrected history", "original plan", "three authors", "PhD, Stanford",
                "moved to Stanford", "Note the order", "hundreds of steps and more",
                "the same as PyTorch's"):
        assert bad not in markdown, bad


def test_factual_fixes(notebook, markdown):
    assert "Graves, A., & Schmidhuber, J. (2005)" in markdown and "**truncated** gradient" in markdown
    assert "Greff et al. (2017) did not test the GRU" in markdown
    assert "Jozefowicz, Zaremba & Sutskever (2015) found the GRU" in markdown
    assert "Cho et al.'s form" in markdown and "3H(D + H + 1) + H" in markdown
    assert "simplified form of the original task" in markdown and "0.5 + (X_1 + X_2)/4" in markdown
    assert "Khandelwal" in markdown and "(4H, D)" in markdown and "batch_first=True" in markdown
    for author in ("Robinson & Fallside (1987)", "Werbos (1988)", "Williams & Zipser (1995)"):
        assert author in markdown, author
    # the gradient-check threshold in the prose is the one the code uses
    code = next(cell_text(c) for c in notebook["cells"] if "gradcheck" in c["metadata"].get("tags", []))
    threshold = re.search(r"err < (1e-\d+)", code).group(1)
    exponent = int(threshold.split("e")[1])
    assert f"below $10^{{{exponent}}}$" in markdown
    assert "an error above $10^{-5}$" not in markdown


# ------------------------------------------------------------------ issue 23: exploding gradients

def test_exploding_gradients_prose_quotes_what_the_code_computes(notebook):
    prose = cell_text(cells_by_id(notebook)["c3f9b0d7e514"])
    sigma = {s: experiments.largest_singular_value(experiments.rnn_recurrent_matrix(weight_scale=s))
             for s in (1.0, 2.0, 4.0)}
    d = {s: experiments.decay_summary(experiments.rnn_gradient_norms(T=100, weight_scale=s)) for s in sigma}
    assert f"largest singular value is {sigma[1.0]:.2f}, above 1" in prose and sigma[1.0] > 1
    assert f"shrinks by ×{d[1.0]['median_step']:.2f} per step" in prose and d[1.0]["median_step"] < 1
    assert f"($\\sigma_{{\\max}} = {sigma[2.0]:.2f}$) it still shrinks, by ×{d[2.0]['median_step']:.2f}" in prose
    assert f"($\\sigma_{{\\max}} = {sigma[4.0]:.2f}$) it **grows** by ×{d[4.0]['median_step']:.2f} per step, to ${sci(d[4.0]['at_1'])}$" in prose
    assert d[2.0]["median_step"] < 1 < d[4.0]["median_step"] and d[4.0]["at_1"] > 1
    free, clipped = experiments.exploding_run(), experiments.exploding_run(clip_fn=ref.clip_grad_norm)
    assert free["grad_norm"][0] == clipped["grad_norm"][0]                 # the same start, the same batches
    assert f"gradient norm of {free['grad_norm'][0]:.0f}" in prose
    assert f"the loss, {free['loss'][0]:.2f} at step 1, is ${sci(free['loss'][-1])}$ at step {len(free['loss'])}" in prose
    assert f"(the largest, ${sci(max(clipped['grad_norm']))}$, was clipped" in prose
    assert f"near the baseline, {np.mean(clipped['loss'][-50:]):.2f} over the last 50 steps" in prose
    assert free["loss"][-1] > 1e100 and np.mean(clipped["loss"][-50:]) < 0.25


# ------------------------------------------------------------------ issue 23: the optional GRU

def test_seqlab_gru_backward_against_finite_differences():
    from seqlab import layers
    from seqlab.gradcheck import numerical_gradient, relative_error
    rng = np.random.default_rng(1)
    N, T, D, H = 2, 4, 3, 5
    x, h0 = rng.normal(size=(N, T, D)), rng.normal(size=(N, H))
    Wx, Wh, b = rng.normal(size=(D, 3 * H)) * 0.5, rng.normal(size=(H, 3 * H)) * 0.5, rng.normal(size=3 * H) * 0.5
    dh = rng.normal(size=(N, T, H))
    _, cache = layers.gru_forward(x, h0, Wx, Wh, b)
    analytic = layers.gru_backward(dh, cache)
    for value, grad in zip((x, h0, Wx, Wh, b), analytic):
        numeric = numerical_gradient(lambda _: layers.gru_forward(x, h0, Wx, Wh, b)[0], value, dh)
        assert relative_error(grad, numeric) < 1e-8


def _gru_step(variant="right"):
    def step(x, h, Wx, Wh, b):
        H = h.shape[1]
        a = x @ Wx + b
        z, r = ref.sigmoid(a[:, :H] + h @ Wh[:, :H]), ref.sigmoid(a[:, H:2 * H] + h @ Wh[:, H:2 * H])
        if variant == "z r swapped":
            z, r = r, z
        inner = r * (h @ Wh[:, 2 * H:]) if variant == "pytorch" else (r * h) @ Wh[:, 2 * H:]
        n = np.tanh(a[:, 2 * H:] + inner)
        return z * n + (1 - z) * h if variant == "1 - z swapped" else (1 - z) * n + z * h
    return step


@pytest.mark.parametrize("variant, words", [
    ("1 - z swapped", "z and 1 - z are swapped"), ("pytorch", "PyTorch's form"), ("z r swapped", "z and r are swapped")])
def test_gru_check_names_the_usual_slips_and_never_raises(variant, words):
    from seqlab import checks, layers
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert checks.check_gru_step_forward(_gru_step(variant)) is False
    assert words in out.getvalue() and "check failed" in out.getvalue()
    with contextlib.redirect_stdout(out):
        assert checks.check_gru_step_forward(_gru_step()) is True
        assert checks.check_gru_step_forward(lambda *a: (_ for _ in ()).throw(NotImplementedError())) is False
    assert "not written yet (optional)" in out.getvalue()
    x, h = np.ones((2, 3)), np.full((2, 4), 0.3)
    rng = np.random.default_rng(0)
    Wx, Wh, b = rng.normal(size=(3, 12)), rng.normal(size=(4, 12)), rng.normal(size=12)
    np.testing.assert_allclose(_gru_step()(x, h, Wx, Wh, b), layers.gru_forward(x[:, None], h, Wx, Wh, b)[0][:, 0],
                               rtol=1e-12)


def test_gru_comparison_prose_quotes_what_the_code_computes(notebook, adding_run):
    res, s = adding_run
    cells = cells_by_id(notebook)
    prose = cell_text(cells["93c5e0b7d2a1"])
    assert "raise NotImplementedError()" in cell_text(cells["b1e6c3a9f470"])       # optional: no solution shipped
    gru = experiments.gru_adding_run(clip_fn=ref.clip_grad_norm)
    step, lstm_step = experiments.solved_step(gru["loss"]), s["solved_step"]
    assert (f"below a tenth of the baseline at step {step}, against {lstm_step} for your LSTM, and ends with a "
            f"test MSE of ${sci(gru['test_mse'])}$ against ${sci(res['LSTM']['test_mse'])}$") in prose
    assert f"({3 * 8 * 11} against {4 * 8 * 11})" in prose
    assert step < lstm_step and gru["test_mse"] < res["LSTM"]["test_mse"]
