"""Data for the chapter's experiments.

The adding problem (Hochreiter & Schmidhuber, 1997): each sequence has T steps of two
inputs. The first is a random number in [0, 1); the second is a marker, 1 at exactly two
steps and 0 elsewhere. The target is the sum of the two marked numbers. One marker lies in
the first half of the sequence and the other in the second half, so the model must carry
information across about T/2 steps. Predicting the mean (1) always gives mean squared error
Var(u1 + u2) = 2/12 = 1/6: a model that learns nothing stays there.
"""
import numpy as np


def adding_problem(n, T, rng):
    """n sequences of the adding problem.

    n: number of sequences; T >= 2: their length; rng: numpy.random.Generator.
    returns x (n, T, 2) float64 (values, markers) and y (n, 1) float64 (sum of the marked values).
    """
    if T < 2:
        raise ValueError("the adding problem needs T >= 2")
    values = rng.random((n, T))
    half = T // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, T, size=n)
    markers = np.zeros((n, T))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1)
    y = (values[rows, first] + values[rows, second])[:, None]
    return x, y
