TITLE = 'Sigmoid through tanh loses precision for negative inputs'
AFFECTS = ('sigmoid',)
SECTION = '3.4, exercise sigmoid'
HINT = (
    'The identity sigmoid(x) = (1 + tanh(x/2)) / 2 is exact on paper, but for very negative x'
    ' it adds two nearly opposite numbers and the small result loses its digits (it even '
    'becomes 0). Use a formula that never subtracts nearly equal numbers.'
)

import numpy as np


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))
