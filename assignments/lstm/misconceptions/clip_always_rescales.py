TITLE = 'Gradients rescaled even when the norm is already small'
AFFECTS = ('clip_grad_norm',)
SECTION = '3.4, exercise clip_grad_norm'
HINT = (
    'Clipping only shrinks: when the total norm is at most max_norm the gradients come back '
    "unchanged. Scaling them up to max_norm changes the optimiser's steps."
)

import numpy as np


def clip_grad_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(np.square(g)) for g in grads.values())))
    scale = max_norm / (total_norm + 1e-6)
    clipped = {name: np.asarray(g) * scale for name, g in grads.items()}
    return clipped, total_norm
