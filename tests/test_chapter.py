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
