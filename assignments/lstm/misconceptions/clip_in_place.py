TITLE = "clip_grad_norm rescales the caller's arrays in place"
AFFECTS = ('clip_grad_norm',)
SECTION = '3.4, exercise clip_grad_norm'
HINT = (
    'Your values are right, but multiplying each array in place changes the gradients the '
    'caller passed in. Return a new dict of new arrays and leave the input untouched.'
)

import numpy as np


def clip_grad_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(np.square(g)) for g in grads.values())))
    if total_norm > max_norm:
        scale = max_norm / (total_norm + 1e-6)
        for name in grads:
            grads[name] *= scale
    return grads, total_norm
