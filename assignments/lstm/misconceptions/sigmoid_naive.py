TITLE = 'Sigmoid overflows for large negative inputs'
AFFECTS = ('sigmoid',)
SECTION = '3.4, exercise sigmoid'
HINT = (
    'Written directly as one over one plus exp(-x), the exponential overflows for x below '
    'about -709 and numpy prints a RuntimeWarning. Compute exp only of minus the absolute '
    'value and pick the right formula for each sign.'
)

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))
