TITLE = 'Each gradient clipped by its own norm'
AFFECTS = ('clip_grad_norm',)
SECTION = '3.4, exercise clip_grad_norm'
HINT = (
    'The norm to compare with max_norm is the norm of all gradients together, and one common '
    'scale factor is applied to every array, so their directions relative to each other are '
    'kept.'
)

import numpy as np


def clip_grad_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(np.square(g)) for g in grads.values())))
    clipped = {}
    for name, g in grads.items():
        norm = float(np.sqrt(np.sum(np.square(g))))
        scale = max_norm / (norm + 1e-6) if norm > max_norm else 1.0
        clipped[name] = np.asarray(g) * scale
    return clipped, total_norm
