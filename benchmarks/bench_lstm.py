"""Reference LSTM speed and memory: solutions.lstm forward + BPTT against torch.nn.LSTM on CPU.

Same run, same shapes (N=64, T=50, D=64, H=128), both on 2 threads (torch.set_num_threads(2);
numpy's BLAS uses the machine's cores, 2 in CI). Best of alternating blocks of runs; ratio =
numpy time / torch time (goal: <= 1.0x). Then the memory held by lstm_forward's cache.

Minimum cache for BPTT, per step and sequence (N rows each):
    the 4 activated gates i, f, g, o   4H   (their derivatives are functions of the values)
    the cell state c_t                  H   (prev_c for df, and tanh(c_t) for do and dc)
    the hidden state h_t                H   (input of step t+1: needed for dWh)
so 6H numbers per row and step, plus the inputs x (T*D per row), h0, Wx and Wh, which
the backward pass needs for dx, dWx and dWh (one could recompute h from o and c, or c from
the gates, trading time for memory; we count h as stored). The reference's cache holds
references to x, h0, Wx, Wh (no copy), and new arrays gates (N,T,4H), c (N,T,H), h (N,T,H).
h is also the forward's output, so the cache adds no memory beyond the gates and c.
"""
import time

import numpy as np

from solutions import lstm

N, T, D, H = 64, 50, 64, 128
BLOCKS, RUNS = 3, 5                     # best of 3 blocks of 5 runs, each library


def best_of_blocks(a, b, blocks, k):
    """Best time of each of two functions: `blocks` alternating blocks of k runs of a, then of b,
    each block after one warm-up run. Blocks, not single alternating runs: numpy's BLAS threads
    and torch's OpenMP threads keep spinning for a while after a call and slow the other library
    (alternating every run made torch about 2x slower here). Returns (best a, best b) in seconds."""
    best = [float("inf"), float("inf")]
    for _ in range(blocks):
        for j, fn in enumerate((a, b)):
            fn()
            for _ in range(k):
                start = time.perf_counter()
                fn()
                best[j] = min(best[j], time.perf_counter() - start)
    return tuple(best)


def arrays_in(obj, seen=None):
    """Every distinct numpy array reachable from a (nested) tuple/list/dict cache."""
    seen = {} if seen is None else seen
    if isinstance(obj, np.ndarray):
        base = obj if obj.base is None else obj.base
        seen.setdefault(id(base), base)
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            arrays_in(item, seen)
    elif isinstance(obj, dict):
        for item in obj.values():
            arrays_in(item, seen)
    return seen


def time_pair(dtype, k):
    import torch

    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, T, D)).astype(dtype)
    h0 = rng.normal(size=(N, H)).astype(dtype)
    s = 1 / np.sqrt(H)
    Wx = rng.uniform(-s, s, (D, 4 * H)).astype(dtype)
    Wh = rng.uniform(-s, s, (H, 4 * H)).astype(dtype)
    b = rng.uniform(-s, s, 4 * H).astype(dtype)
    dh = rng.normal(size=(N, T, H)).astype(dtype)

    def ours():
        h, cache = lstm.lstm_forward(x, h0, Wx, Wh, b)
        lstm.lstm_backward(dh, cache)

    net = torch.nn.LSTM(D, H, batch_first=True).to(torch.float64 if dtype == np.float64 else torch.float32)
    tx = torch.tensor(x, requires_grad=True)
    th0 = torch.tensor(h0[None], requires_grad=True)
    tc0 = torch.zeros_like(th0)
    tdh = torch.tensor(dh)

    def theirs():
        net.zero_grad(set_to_none=True)
        tx.grad = th0.grad = None
        out, _ = net(tx, (th0, tc0))
        out.backward(tdh)

    return (*best_of_blocks(ours, theirs, BLOCKS, k), (x, h0, Wx, Wh, b))


def main():
    import torch

    torch.set_num_threads(2)
    print("== LSTM reference (solutions.lstm) vs torch.nn.LSTM, CPU, forward + backward ==")
    print(f"N={N} T={T} D={D} H={H}, torch threads={torch.get_num_threads()}, "
          f"best of {BLOCKS} alternating blocks of {RUNS} runs")
    for dtype in (np.float64, np.float32):
        ours, theirs, args = time_pair(dtype, RUNS)
        print(f"{np.dtype(dtype).name:8s} numpy {ours * 1e3:7.1f} ms   torch {theirs * 1e3:7.1f} ms   "
              f"ratio {ours / theirs:4.2f}x (goal <= 1.0x)")
    x, h0, Wx, Wh, b = args                  # float32 arrays; measure float64 memory below
    x, h0, Wx, Wh, b = (a.astype(np.float64) for a in (x, h0, Wx, Wh, b))
    h, cache = lstm.lstm_forward(x, h0, Wx, Wh, b)
    inputs = {id(a) for a in (x, h0, Wx, Wh, b)}
    held = arrays_in(cache)
    new = sum(a.nbytes for i, a in held.items() if i not in inputs)
    extra = sum(a.nbytes for i, a in held.items() if i not in inputs and i != id(h))
    total = sum(a.nbytes for a in held.values())
    minimum = N * T * 6 * H * 8              # gates (4H) + c (H) + h (H) per row and step, float64
    mib = 2.0 ** 20
    print(f"cache (float64): {total / mib:.1f} MiB reachable, {new / mib:.1f} MiB of new arrays "
          f"({extra / mib:.1f} MiB beyond the output h); minimum for BPTT {minimum / mib:.1f} MiB "
          f"(gates, c and h: 6H per row and step) -> {new / minimum:.2f}x the minimum")
