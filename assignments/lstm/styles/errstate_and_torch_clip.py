TITLE = 'Sigmoid as 1/(1+exp(-x)) with overflow silenced; clipping as in torch, via np.linalg.norm'

import numpy as np


def sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def clip_grad_norm(grads, max_norm):
    flat = np.concatenate([g.ravel() for g in grads.values()])
    total_norm = np.linalg.norm(flat)
    coef = min(max_norm / (total_norm + 1e-6), 1.0)
    clipped = {}
    for name, g in grads.items():
        clipped[name] = g * coef if total_norm > max_norm else g.copy()
    return clipped, float(total_norm)
