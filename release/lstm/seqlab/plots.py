"""Figures of the chapter, drawn with matplotlib (imported inside each function, so that
`import seqlab` needs numpy only).

    draw_unrolled_rnn(T=4)          a recurrent layer, folded (one box, a loop) and unrolled over time
    draw_lstm_cell()                one LSTM step: cell-state line, the four gates, products and sums
    plot_losses(histories)          training-loss curves, one per model
    plot_gradient_norms(norms)      ||dL/dh_t|| against t on a log scale (and ||dL/dc_t|| beside it)
    draw_step_graph()               the computational graph of one LSTM step, with the two
                                    paths by which the gradient reaches c_t
    text_heatmap_html(text, values) a text with each character shaded by a number (HTML)

Every function draws into a new figure (or into `ax` when given) and returns the figure.
"""
import numpy as np

# Colours (colour-blind-safe palette of Okabe & Ito)
INPUT = "#009E73"      # green: inputs
HIDDEN = "#0072B2"     # blue: the recurrent computation
OUTPUT = "#D55E00"     # vermilion: outputs
GATE = "#E69F00"       # orange: sigmoid gates
CAND = "#56B4E9"       # sky blue: tanh candidate
CELL = "#555555"       # the cell-state line
LINE_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]


def _pyplot():
    import matplotlib.pyplot as plt
    return plt


def _axes(ax, figsize):
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    return fig, ax


def _box(ax, xy, w, h, text, colour, fontsize=12, text_colour="white", rounding=0.08):
    from matplotlib.patches import FancyBboxPatch
    x, y = xy
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                boxstyle=f"round,pad=0.02,rounding_size={rounding}",
                                facecolor=colour, edgecolor="black", linewidth=1.0, zorder=3))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=text_colour, zorder=4)


def _arrow(ax, start, end, colour="black", lw=1.4, style="-|>", connection="arc3", shrink=0.0,
           over=False, halo="white"):
    """An arrow; over=True draws it above the other arrows with a halo, so that where two
    lines cross, this one visibly passes over the other."""
    from matplotlib import patheffects
    from matplotlib.patches import FancyArrowPatch
    effects = [patheffects.withStroke(linewidth=lw + 5, foreground=halo)] if over else None
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=13, color=colour,
                                 linewidth=lw, connectionstyle=connection, shrinkA=shrink,
                                 shrinkB=shrink, zorder=2.5 if over else 2, path_effects=effects))


def _circle(ax, xy, text, r=0.22, colour="white", fontsize=13):
    from matplotlib.patches import Circle
    ax.add_patch(Circle(xy, r, facecolor=colour, edgecolor="black", linewidth=1.2, zorder=3))
    ax.text(xy[0], xy[1], text, ha="center", va="center", fontsize=fontsize, zorder=4)


def draw_unrolled_rnn(T=4, ax=None):
    """A recurrent layer folded (left: one cell whose output loops back into it) and unrolled
    over T time steps (right: one copy of the same cell per step, the hidden state h_t
    passed from step t to step t+1). Returns the figure."""
    if T < 2:
        raise ValueError("draw at least two time steps")
    fig, ax = _axes(ax, (1.9 * (T + 2.2), 3.6))
    w, hgt = 0.9, 0.7
    ys = {"x": 0.0, "h": 1.5, "y": 3.0}

    def column(cx, t):
        _box(ax, (cx, ys["x"]), w, hgt * 0.8, f"$x_{{{t}}}$", INPUT)
        _box(ax, (cx, ys["h"]), w, hgt, "RNN", HIDDEN)
        _box(ax, (cx, ys["y"]), w, hgt * 0.8, f"$\\hat y_{{{t}}}$", OUTPUT)
        _arrow(ax, (cx, ys["x"] + hgt * 0.4 + 0.05), (cx, ys["h"] - hgt / 2 - 0.05))
        _arrow(ax, (cx, ys["h"] + hgt / 2 + 0.05), (cx, ys["y"] - hgt * 0.4 - 0.05))

    # folded
    column(0.0, "t")
    _arrow(ax, (w / 2 + 0.02, ys["h"] + 0.18), (w / 2 + 0.02, ys["h"] - 0.18), colour=HIDDEN,
           lw=1.8, connection="bar,fraction=-1.2")
    ax.text(w / 2 + 0.5, ys["h"], "$h$", ha="left", va="center", fontsize=11, color=HIDDEN)
    ax.text(2.0, ys["h"], "=", ha="center", va="center", fontsize=26)
    ax.text(0.0, ys["y"] + 0.75, "folded", ha="center", fontsize=12, style="italic")

    # unrolled
    x0, dx = 4.1, 1.9
    labels = [str(k + 1) for k in range(T)] if T <= 4 else ["1", "2", "3", "T"]
    centres = [x0 + k * dx for k in range(len(labels))]
    for k, (cx, t) in enumerate(zip(centres, labels)):
        column(cx, t)
    _box(ax, (x0 - dx * 0.7, ys["h"]), 0.6, hgt * 0.8, "$h_0$", "#999999")
    _arrow(ax, (x0 - dx * 0.7 + 0.32, ys["h"]), (x0 - w / 2 - 0.05, ys["h"]), colour=HIDDEN, lw=1.8)
    for k in range(len(centres) - 1):
        a, b = centres[k], centres[k + 1]
        if T > 4 and k == 2:
            ax.text((a + b) / 2, ys["h"] + 0.25, "$\\cdots$", ha="center", fontsize=14)
            continue
        _arrow(ax, (a + w / 2 + 0.05, ys["h"]), (b - w / 2 - 0.05, ys["h"]), colour=HIDDEN, lw=1.8)
        ax.text((a + b) / 2, ys["h"] - 0.3, f"$h_{{{labels[k]}}}$", ha="center", va="center",
                fontsize=11, color=HIDDEN)
    ax.text((centres[0] + centres[-1]) / 2, ys["y"] + 0.75,
            "unrolled over time: the same weights at every step", ha="center", fontsize=12,
            style="italic")
    ax.set_xlim(-0.9, centres[-1] + 0.9)
    ax.set_ylim(-0.6, 4.0)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def draw_lstm_cell(ax=None):
    """One LSTM step (gate order [i | f | g | o] as in the exercises): the cell state c runs
    along the top, multiplied by the forget gate f and added to i * g; the output gate o
    multiplies tanh(c_t) to give h_t. Returns the figure."""
    fig, ax = _axes(ax, (9.5, 5.6))
    top, mid, bot = 4.0, 2.2, 0.6           # cell-state line, gate row, [h_{t-1}, x_t] line
    xi, xf, xg, xo = 2.0, 3.4, 4.6, 6.4      # gate columns, in the order of the 4H columns
    x_mul_f, x_add, x_mul_o = xf, xg, xo + 1.0

    # frame of the cell
    from matplotlib.patches import FancyBboxPatch
    ax.add_patch(FancyBboxPatch((0.9, 0.1), 7.9, 4.55, boxstyle="round,pad=0.05,rounding_size=0.3",
                                facecolor="#F4F4F4", edgecolor="#999999", linewidth=1.0, zorder=0))

    # cell state line
    _arrow(ax, (0.0, top), (x_mul_f - 0.22, top), colour=CELL, lw=2.6)
    _arrow(ax, (x_mul_f + 0.22, top), (x_add - 0.22, top), colour=CELL, lw=2.6)
    _arrow(ax, (x_add + 0.22, top), (9.8, top), colour=CELL, lw=2.6)
    ax.text(0.0, top + 0.22, "$c_{t-1}$", fontsize=13, ha="left")
    ax.text(9.8, top + 0.22, "$c_t$", fontsize=13, ha="right")
    _circle(ax, (x_mul_f, top), "$\\odot$")
    _circle(ax, (x_add, top), "$+$")

    # input line: [h_{t-1}, x_t]
    ax.plot([0.0, xo], [bot, bot], color="black", lw=1.4, zorder=1)
    ax.text(0.0, bot - 0.38, "$h_{t-1}$", fontsize=13, ha="left")
    _arrow(ax, (1.4, -0.5), (1.4, bot), lw=1.4)
    ax.text(1.55, -0.45, "$x_t$", fontsize=13, ha="left")

    # gates
    gates = [(xi, "$\\sigma$", "$i_t$", GATE), (xf, "$\\sigma$", "$f_t$", GATE),
             (xg, "tanh", "$g_t$", CAND), (xo, "$\\sigma$", "$o_t$", GATE)]
    for gx, fn, label, colour in gates:
        ax.plot([gx, gx], [bot, mid - 0.3], color="black", lw=1.4, zorder=1)
        _box(ax, (gx, mid), 0.8, 0.6, fn, colour, fontsize=12, text_colour="black")
        ax.text(gx + 0.45, mid + 0.45, label, fontsize=12, ha="left", va="center")
    _arrow(ax, (xf, mid + 0.3), (x_mul_f, top - 0.22), over=True, halo="#F4F4F4")   # f -> x
    _circle(ax, (x_add, mid + 1.0), "$\\odot$")                              # i * g
    _arrow(ax, (xi, mid + 0.3), (x_add - 0.2, mid + 0.9), connection="arc3,rad=-0.25")
    _arrow(ax, (xg, mid + 0.3), (x_add, mid + 0.78))
    _arrow(ax, (x_add, mid + 1.22), (x_add, top - 0.22))

    # output: h_t = o * tanh(c_t)
    xt = x_mul_o
    _arrow(ax, (xt, top), (xt, 3.3), lw=1.4)
    _box(ax, (xt, 3.05), 0.8, 0.45, "tanh", CAND, fontsize=11, text_colour="black")
    _arrow(ax, (xt, 2.82), (xt, mid + 0.22))
    _circle(ax, (xt, mid), "$\\odot$")
    _arrow(ax, (xo + 0.4, mid), (xt - 0.22, mid))
    ax.plot([xt, xt], [mid - 0.22, bot], color="black", lw=1.4, zorder=1)
    _arrow(ax, (xt, bot), (9.8, bot), lw=1.4)
    ax.text(9.8, bot - 0.38, "$h_t$", fontsize=13, ha="right")
    _arrow(ax, (xt + 0.8, bot), (xt + 0.8, 5.1), lw=1.4)
    ax.text(xt + 0.95, 5.0, "$h_t$ (output)", fontsize=11, ha="left", va="top")

    ax.text(5.3, -0.55, "$[i\\,|\\,f\\,|\\,g\\,|\\,o] = [\\sigma, \\sigma, \\tanh, \\sigma]"
            "(x_t W_x + h_{t-1} W_h + b)$", fontsize=11, ha="center")
    ax.text(5.3, -0.95, "$c_t = f_t \\odot c_{t-1} + i_t \\odot g_t, \\quad"
            "h_t = o_t \\odot \\tanh(c_t)$", fontsize=11, ha="center")
    ax.set_xlim(-0.2, 10.0)
    ax.set_ylim(-1.15, 5.2)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def _smooth(values, window):
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_losses(histories, ax=None, smooth=1, log=True, baseline=None, title="Training loss",
                ylabel="loss", points=None, exp=False):
    """Training curves. histories: dict label -> list of losses per step, or label -> history
    dict with a "loss" list (what seqlab.models.train returns). smooth: moving-average window
    in steps. baseline: optional (value, label) drawn as a dashed horizontal line. points:
    optional dict label -> (steps, values), curves measured at some steps only (a held-out
    loss), drawn with markers and not smoothed. exp: plot the exponential of every curve (a
    cross-entropy becomes a perplexity; smoothing is done before). Returns the figure."""
    fig, ax = _axes(ax, (7.5, 4.2))
    show = np.exp if exp else np.asarray
    for k, (label, hist) in enumerate(histories.items()):
        loss = hist["loss"] if isinstance(hist, dict) else hist
        y = _smooth(loss, smooth)
        steps = np.arange(len(y)) + (len(loss) - len(y)) + 1
        ax.plot(steps, show(y), label=label, color=LINE_COLOURS[k % len(LINE_COLOURS)], lw=1.6)
    for k, (label, (steps, values)) in enumerate((points or {}).items(), start=len(histories)):
        ax.plot(steps, show(np.asarray(values, dtype=float)), "o-", label=label, ms=4,
                color=LINE_COLOURS[k % len(LINE_COLOURS)], lw=1.6)
    if baseline is not None:
        value, label = baseline
        ax.axhline(value, color="grey", ls="--", lw=1.2, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    if smooth > 1:   # one pair of parentheses: "loss (nats, moving average over 20 steps)"
        what = f"moving average over {smooth} steps"
        ylabel = ylabel[:-1] + f", {what})" if ylabel.endswith(")") else f"{ylabel} ({what})"
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_gradient_norms(norms, ax=None, title="How far back does the gradient reach?",
                        cell_norms=None):
    """norms: dict label -> 1-d array, norms[t] = ||dL/dh_t|| for a loss on the last step.
    Plotted against t on a log scale (the last step on the right). cell_norms: optional dict
    label -> ||dL/dc_t||, drawn in a second panel on the right with the same colours (the
    labels that norms and cell_norms share get the same colour). Returns the figure."""
    if cell_norms is None:
        fig, ax = _axes(ax, (7.5, 4.2))
        panels = [(ax, norms, "$\\|\\partial L / \\partial h_t\\|$", title)]
    else:
        plt = _pyplot()
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
        panels = [(left, norms, "$\\|\\partial L / \\partial h_t\\|$", "hidden state $h_t$"),
                  (right, cell_norms, "$\\|\\partial L / \\partial c_t\\|$", "cell state $c_t$")]
        fig.suptitle(title)
    labels = list(norms) + [k for k in (cell_norms or {}) if k not in norms]
    colour = {label: LINE_COLOURS[k % len(LINE_COLOURS)] for k, label in enumerate(labels)}
    for axis, curves, ylabel, panel_title in panels:
        for label, values in curves.items():
            values = np.asarray(values, dtype=float)
            t = np.arange(1, len(values) + 1)
            positive = values > 0
            axis.semilogy(t[positive], values[positive], label=label, color=colour[label], lw=1.8)
        axis.set_xlabel("time step $t$ (the loss depends on the last step only)")
        axis.set_ylabel(ylabel)
        axis.set_title(panel_title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=9)
    fig.tight_layout()
    return fig


def draw_step_graph(ax=None):
    """The computational graph of one LSTM step, read left to right by the forward pass and
    right to left by the backward pass: variables in white boxes, operations in circles.
    The gradient arrives from step t+1 as dnext_c (on c_t) and dnext_h (on h_t); the two red
    paths (1: along the cell line, 2: through h_t = o_t * tanh(c_t)) meet at c_t. The forget
    gate's branch, the chapter's worked example, is drawn in orange. Returns the figure."""
    fig, ax = _axes(ax, (11.5, 5.6))
    red, orange = "#C0392B", GATE

    def var(xy, label, w=0.95, colour="white", edge="black", fontsize=13):
        from matplotlib.patches import FancyBboxPatch
        ax.add_patch(FancyBboxPatch((xy[0] - w / 2, xy[1] - 0.24), w, 0.48,
                                    boxstyle="round,pad=0.02,rounding_size=0.1", facecolor=colour,
                                    edgecolor=edge, linewidth=1.3, zorder=3))
        ax.text(xy[0], xy[1], label, ha="center", va="center", fontsize=fontsize, zorder=4)

    def op(xy, label, colour="#EEEEEE", fontsize=12):
        _circle(ax, xy, label, r=0.27, colour=colour, fontsize=fontsize)

    ys = {"i": 4.0, "f": 3.0, "g": 2.0, "o": 1.0}   # top to bottom: the order of the 4H columns
    # inputs and pre-activations
    var((0.6, 2.5), "$x_t,\\ h_{t-1}$", w=1.15)
    op((1.95, 2.5), "aff", fontsize=9)
    _arrow(ax, (1.18, 2.5), (1.68, 2.5))
    ax.text(1.95, 1.95, "$a_t = x_t W_x$\n$+ h_{t-1} W_h + b$", ha="center", va="top", fontsize=9)
    for name, fn in (("i", "$\\sigma$"), ("f", "$\\sigma$"), ("g", "tanh"), ("o", "$\\sigma$")):
        y = ys[name]
        colour = orange if name == "f" else "black"
        _arrow(ax, (2.2, 2.5), (3.03, y), colour=colour)
        ax.text(2.72, y + 0.14 if y >= 2.5 else y - 0.2, f"$a^{{({name})}}$", fontsize=10,
                ha="center", color=colour)
        op((3.3, y), fn, colour=GATE if fn != "tanh" else CAND, fontsize=9 if fn == "tanh" else 13)
        var((4.45, y), f"${name}_t$", w=0.7, edge=orange if name == "f" else "black")
        _arrow(ax, (3.57, y), (4.1, y), colour=colour)
    var((4.45, 5.1), "$c_{t-1}$", w=0.8)
    # products and sum
    op((5.9, 4.55), "$\\odot$")
    _arrow(ax, (4.85, 5.1), (5.66, 4.68))
    _arrow(ax, (4.8, 3.0), (5.68, 4.36), colour=orange, over=True)
    op((5.9, 2.5), "$\\odot$")
    _arrow(ax, (4.8, 4.0), (5.66, 2.64))
    _arrow(ax, (4.8, 2.0), (5.66, 2.38))
    op((7.1, 3.5), "$+$")
    _arrow(ax, (6.12, 4.38), (6.88, 3.68))
    _arrow(ax, (6.12, 2.66), (6.88, 3.32))
    var((8.3, 3.5), "$c_t$", w=0.7)
    _arrow(ax, (7.37, 3.5), (7.95, 3.5))
    # output
    op((9.2, 2.4), "tanh", colour=CAND, fontsize=9)
    _arrow(ax, (8.45, 3.25), (9.0, 2.6))
    op((10.2, 1.4), "$\\odot$")
    _arrow(ax, (9.4, 2.2), (10.0, 1.6))
    _arrow(ax, (4.8, 1.0), (9.93, 1.35))
    var((11.3, 1.4), "$h_t$", w=0.7)
    _arrow(ax, (10.47, 1.4), (10.95, 1.4))
    _arrow(ax, (8.65, 3.5), (11.7, 3.5))
    ax.text(11.75, 3.5, "to step $t+1$", va="center", fontsize=10)
    ax.text(11.7, 1.4, "to step $t+1$\nand the loss", va="center", fontsize=10)

    # the backward pass: where the gradient comes in, and the two paths into c_t
    _arrow(ax, (11.7, 3.85), (8.75, 3.85), colour=red, lw=2.0)
    ax.text(10.2, 4.0, "1: $\\partial L/\\partial c_t$ from step $t+1$ (dnext_c)", color=red,
            fontsize=10, ha="center", va="bottom")
    _arrow(ax, (11.3, 0.95), (10.25, 0.95), colour=red, lw=2.0)
    ax.text(11.45, 0.72, "dnext_h", color=red, fontsize=10, ha="center", va="top")
    _arrow(ax, (10.2, 1.85), (9.6, 2.45), colour=red, lw=2.0, connection="arc3,rad=0.35")
    _arrow(ax, (9.25, 2.85), (8.7, 3.2), colour=red, lw=2.0, connection="arc3,rad=0.35")
    ax.text(10.1, 2.75, "2: through\n$h_t = o_t \\odot \\tanh(c_t)$", color=red, fontsize=10,
            ha="left", va="center")
    ax.text(8.3, 4.55, "$\\delta c_t$ = sum of 1 and 2", color=red, fontsize=11, ha="center")
    ax.text(4.3, 3.5, "worked example", color=orange, fontsize=8, ha="center", va="center")

    ax.set_xlim(0.0, 12.9)
    ax.set_ylim(0.2, 5.55)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def text_heatmap_html(text, values, limit=None):
    """HTML that shows `text` with each character's background shaded by values[k] (red for
    negative, blue for positive, white near zero; newlines kept). values: one number per
    character; limit: the value drawn at full colour (default: the largest |value|)."""
    import html
    values = np.asarray(values, dtype=float)
    if len(values) != len(text):
        raise ValueError(f"{len(text)} characters but {len(values)} values")
    limit = float(np.max(np.abs(values))) if limit is None else float(limit)
    limit = limit if limit > 0 else 1.0
    spans = []
    for ch, v in zip(text, values):
        a = min(abs(v) / limit, 1.0)
        rgb = (int(255 - a * (255 - 33)), int(255 - a * (255 - 102)), int(255 - a * (255 - 172))) \
            if v > 0 else (int(255 - a * (255 - 192)), int(255 - a * (255 - 57)), int(255 - a * (255 - 43)))
        shown = "\u21b5<br>" if ch == "\n" else html.escape(ch).replace(" ", "&nbsp;")
        spans.append(f'<span style="background-color: rgb{rgb}">{shown}</span>')
    return ('<div style="font-family: monospace; font-size: 13px; line-height: 1.5">'
            + "".join(spans) + "</div>")
