"""Numerical gradients by centered differences, to check a backward pass.

For a function f returning an array and an upstream gradient df of f's output, the
gradient of the scalar L(x) = sum(f(x) * df) is approximated entrywise by
    dL/dx[k] ~ (L(x + h e_k) - L(x - h e_k)) / (2 h)
with error O(h^2). In float64, h = 1e-5 balances that error against rounding.
"""
import numpy as np


def numerical_gradient(f, x, df, h=1e-5):
    """Centered-difference gradient of sum(f(x) * df) with respect to x.

    f: function of x (called with no other argument) returning an array shaped like df.
    x: float array; it is perturbed in place, one entry at a time, and restored exactly.
    df: upstream gradient, shaped like f(x).
    returns an array shaped like x.
    """
    grad = np.zeros_like(x, dtype=np.result_type(x, np.float64) if x.dtype.kind != "f" else x.dtype)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        k = it.multi_index
        old = x[k]
        x[k] = old + h
        plus = np.sum(np.asarray(f(x)) * df)
        x[k] = old - h
        minus = np.sum(np.asarray(f(x)) * df)
        x[k] = old
        grad[k] = (plus - minus) / (2.0 * h)
    return grad


def relative_error(a, b):
    """max |a - b| / max(|a| + |b|), a scale-free distance between two arrays (0 when equal)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(a) + np.abs(b))), 1e-300)
    return float(np.max(np.abs(a - b))) / scale
