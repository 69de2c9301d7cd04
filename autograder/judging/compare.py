"""Comparing a student's outputs with expected ones, in the grader's own process.

Every function returns (passed, message); messages speak of shapes, dtypes and error sizes,
never of the hidden input values. NaN and inf never pass, on either side of a comparison.
"""
import numpy as np

TINY = 1e-300


def relative_error(actual, expected):
    """max |actual - expected| / max |expected| (norm-wise), with the index of the largest;
    NaN or inf when either side holds a non-finite value."""
    with np.errstate(over="ignore", invalid="ignore"):
        diff = np.asarray(np.subtract(actual, expected, dtype=np.float64))
    if not diff.size:
        return 0.0, ()
    np.abs(diff, out=diff)
    scale = max(float(np.max(expected)), -float(np.min(expected)), TINY)
    k = int(np.argmax(diff))     # the first NaN, if there is one
    return float(diff.flat[k]) / scale, tuple(int(i) for i in np.unravel_index(k, diff.shape))


def not_finite(actual, expected):
    """The message for NaN or inf on either side, or None when all values are finite."""
    if not np.all(np.isfinite(expected)):
        return "cannot be checked: the value it is compared with is not finite"
    bad = ~np.isfinite(actual)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        return f"contains {int(bad.sum())} NaN/inf value(s), first at index {first}"
    return None


def arrays(actual, expected, rtol, elementwise=False):
    """Numeric array vs expected array: shape, dtype, NaN/inf, then the error.

    elementwise=False: max |a - e| <= rtol * max |e| (robust where entries cancel to ~0).
    elementwise=True:  |a - e| <= rtol * |e| at every entry (for "exact to rounding").
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.dtype.kind not in "biuf":
        return False, f"is not a real-valued array (dtype {actual.dtype})"
    if actual.shape != expected.shape:
        return False, f"has shape {actual.shape}, expected {expected.shape}"
    if expected.dtype == np.float64 and actual.dtype != np.float64:
        return False, f"has dtype {actual.dtype}, expected float64 (keep the inputs' precision)"
    actual = actual.astype(np.float64, copy=False)
    expected = expected.astype(np.float64, copy=False)
    if elementwise:
        problem = not_finite(actual, expected)
        if problem:
            return False, problem
        excess = np.abs(actual - expected) - rtol * np.abs(expected)
        if (excess > TINY).any():
            k = np.unravel_index(int(np.argmax(excess)), excess.shape)
            rel = abs(actual[k] - expected[k]) / max(abs(expected[k]), TINY)
            return False, (f"is off by a relative {rel:.1e} at index {tuple(int(i) for i in k)} "
                           f"(allowed {rtol:.0e})")
        return True, ""
    err, where = relative_error(actual, expected)   # one pass finds a NaN or inf on either side
    if not np.isfinite(err):   # else finite values whose difference overflows: an error of inf
        return False, not_finite(actual, expected) or f"has relative error inf (allowed {rtol:.0e})"
    if not err <= rtol:
        return False, f"has relative error {err:.1e} (allowed {rtol:.0e}), largest at index {where}"
    return True, ""


def values(actual, expected, rtol, elementwise=False):
    """Any output: arrays, dicts of arrays, tuples, numbers, booleans."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False, f"is a {type(actual).__name__}, expected a dict"
        if set(actual) != set(expected):
            return False, f"has keys {sorted(actual)}, expected {sorted(expected)}"
        for key in expected:
            ok, message = values(actual[key], expected[key], rtol, elementwise)
            if not ok:
                return False, f"[{key!r}] {message}"
        return True, ""
    if isinstance(expected, tuple):
        if not isinstance(actual, tuple) or len(actual) != len(expected):
            return False, f"should be {len(expected)} values"
        for k, (a, e) in enumerate(zip(actual, expected)):
            ok, message = values(a, e, rtol, elementwise)
            if not ok:
                return False, f"[{k}] {message}"
        return True, ""
    if np.asarray(expected).dtype == bool:
        return bool(np.asarray(actual).shape == np.asarray(expected).shape and np.all(np.asarray(actual) == expected)), ""
    if isinstance(actual, (dict, tuple)) or actual is None:
        return False, f"is a {type(actual).__name__}, expected an array"
    return arrays(actual, expected, rtol, elementwise)
