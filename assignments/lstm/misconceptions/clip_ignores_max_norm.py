TITLE = 'Clipping divides by the norm but forgets max_norm'
AFFECTS = ('clip_grad_norm',)
SECTION = '3.4, exercise clip_grad_norm'
HINT = (
    'Dividing by the total norm makes the joint norm 1, whatever max_norm is. The scale '
    'factor is max_norm divided by the total norm (plus the small epsilon).'
)

import numpy as np


def clip_grad_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(np.square(g)) for g in grads.values())))
    scale = 1.0 / total_norm if total_norm > max_norm else 1.0
    clipped = {name: np.asarray(g) * scale for name, g in grads.items()}
    return clipped, total_norm
