"""Adam (Kingma & Ba, 2015), the same update as torch.optim.Adam (no weight decay)."""
import numpy as np


class Adam:
    """Adam optimiser for a dict of numpy arrays.

    For every parameter p with gradient g, at step t = 1, 2, ...:
        m = beta1 * m + (1 - beta1) * g           first moment (running mean of g)
        v = beta2 * v + (1 - beta2) * g^2         second moment (running mean of g^2)
        p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
    which is what torch.optim.Adam computes, in the same order of operations.
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0
        self.m = {}
        self.v = {}

    def step(self, params, grads):
        """Update every array of params (dict name -> array) in place with grads[name]."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        bias1 = 1.0 - b1 ** self.t
        bias2_sqrt = np.sqrt(1.0 - b2 ** self.t)
        for name, p in params.items():
            g = grads[name]
            if name not in self.m:
                self.m[name] = np.zeros_like(p)
                self.v[name] = np.zeros_like(p)
            m, v = self.m[name], self.v[name]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            denom = np.sqrt(v) / bias2_sqrt + self.eps
            p -= (self.lr / bias1) * (m / denom)
