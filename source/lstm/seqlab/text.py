"""Character-level text helpers for the chapter's language-model demo (Section 3.6).

A character-level language model reads a text one character at a time and, at every step,
predicts the next character. Here:

    text    = load_text()                       the sonnets in data/sonnets.txt (public domain)
    vocab   = Vocabulary(text)                  the distinct characters, each with an integer id
    ids     = vocab.encode(text)                (L,) int array
    x, y    = random_batch(ids, N, T, V, rng)   x (N, T, V) one-hot inputs, y (N, T) next-character ids
    train, valid = split_text(text, 0.1)        hold out the last sonnets to measure perplexity
    streams = batchify(ids, N)                  (N, L): N parallel streams, for truncated BPTT
    x, y    = chunk(streams, start, T, V)       the next T characters of every stream, and targets
    sample(lstm_step_forward, params, vocab, ...)   generate text one character at a time

The step function is injected: the notebook passes the student's own lstm_step_forward.
Only numpy is imported.
"""
import os

import numpy as np

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def load_text(name="sonnets.txt"):
    """The text of data/<name> as a str (UTF-8, newlines kept)."""
    with open(os.path.join(DATA_DIR, name), encoding="utf-8") as fh:
        return fh.read()


class Vocabulary:
    """The sorted distinct characters of a text and the maps char <-> integer id."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.index = {ch: k for k, ch in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        """str -> (L,) int64 array of ids. Raises KeyError on a character not in the vocabulary."""
        return np.array([self.index[ch] for ch in text], dtype=np.int64)

    def decode(self, ids):
        """Sequence of ids -> str."""
        return "".join(self.chars[int(k)] for k in ids)


def one_hot(ids, V):
    """ids: int array of any shape -> float64 array of shape ids.shape + (V,)."""
    ids = np.asarray(ids)
    out = np.zeros(ids.shape + (V,))
    np.put_along_axis(out, ids[..., None], 1.0, axis=-1)
    return out


def random_batch(ids, N, T, V, rng):
    """N random windows of T characters and, for each position, the character that follows.

    ids: (L,) encoded text with L > T; rng: numpy.random.Generator.
    returns x (N, T, V) one-hot float64 inputs and y (N, T) int64 targets, y[n, t] = ids[s_n + t + 1].
    """
    ids = np.asarray(ids)
    if len(ids) <= T:
        raise ValueError(f"the text has {len(ids)} characters; need more than T = {T}")
    starts = rng.integers(0, len(ids) - T, size=N)
    window = starts[:, None] + np.arange(T + 1)[None, :]        # (N, T + 1)
    chunk = ids[window]
    return one_hot(chunk[:, :-1], V), chunk[:, 1:].astype(np.int64)


def split_text(text, fraction=0.1):
    """Split a text into (train, valid) at a blank line, so that about `fraction` of it (whole
    sonnets, stanzas or paragraphs) is held out at the end for measuring perplexity."""
    cut = text.rfind("\n\n", 0, int(len(text) * (1 - fraction)))
    if cut <= 0:
        cut = int(len(text) * (1 - fraction))
    return text[:cut + 1], text[cut + 1:]


def batchify(ids, N):
    """Cut an encoded text into N parallel streams of equal length: an (N, L) int64 array whose
    row n is the n-th piece of the text, L = len(ids) // N (the remainder is dropped).

    Truncated backpropagation through time walks along the columns, T at a time: the state of
    row n at the end of one chunk is then exactly the state the next chunk of row n needs."""
    ids = np.asarray(ids, dtype=np.int64)
    L = len(ids) // N
    if L < 2:
        raise ValueError(f"{len(ids)} characters cannot make {N} streams")
    return ids[:N * L].reshape(N, L)


def chunk(streams, start, T, V):
    """The chunk of T steps that starts at column `start` of every stream.

    streams: (N, L) from batchify; needs start + T + 1 <= L.
    returns x (N, T, V) one-hot inputs streams[:, start:start+T] and y (N, T) int64 targets,
    the characters that follow: streams[:, start+1:start+T+1].
    """
    streams = np.asarray(streams)
    if start < 0 or start + T + 1 > streams.shape[1]:
        raise ValueError(f"a chunk of {T} steps at {start} does not fit streams of length "
                         f"{streams.shape[1]}")
    block = streams[:, start:start + T + 1]
    return one_hot(block[:, :-1], V), block[:, 1:].astype(np.int64)


def line_position(text):
    """For every character of text, how many characters precede it on its line (0 right
    after a newline): an (L,) int array."""
    out = np.empty(len(text), dtype=np.int64)
    k = 0
    for n, ch in enumerate(text):
        out[n] = k
        k = 0 if ch == "\n" else k + 1
    return out


def softmax(z):
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


def sample(step_forward, params, vocab, prime="\n", length=300, temperature=1.0, rng=None):
    """Generate text with a trained character-level LSTM, one character at a time.

    step_forward(x, prev_h, prev_c, Wx, Wh, b) -> (next_h, next_c, cache): e.g. the student's
        lstm_step_forward (the cache is ignored).
    params: dict with Wx (V, 4H), Wh (H, 4H), b (4H,), W_out (H, V), b_out (V,) (seqlab.models).
    prime: text fed in first (it warms the state up; at least one character).
    temperature > 0: the logits are divided by it before the softmax. Below 1 the samples are
        more conservative (at the limit, always the most likely character), above 1 more random.
    returns prime + `length` generated characters.
    """
    if not prime:
        raise ValueError("prime needs at least one character")
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    rng = np.random.default_rng() if rng is None else rng
    V, H = len(vocab), params["Wh"].shape[0]
    h = np.zeros((1, H))
    c = np.zeros((1, H))
    out = list(prime)
    ids = list(vocab.encode(prime))
    for k in ids[:-1]:                                          # warm up on the prime
        h, c, _ = step_forward(one_hot([k], V), h, c, params["Wx"], params["Wh"], params["b"])
    k = ids[-1]
    for _ in range(length):
        h, c, _ = step_forward(one_hot([k], V), h, c, params["Wx"], params["Wh"], params["b"])
        logits = (h @ params["W_out"] + params["b_out"])[0]
        p = softmax(logits / temperature)
        k = int(rng.choice(V, p=p))
        out.append(vocab.chars[k])
    return "".join(out)
