"""seqlab: small numpy toolkit for the LSTM chapter.

Modules (each imports only numpy at import time):
    layers     vanilla tanh RNN, temporal affine layer, softmax cross-entropy, mean squared error
    optim      Adam, with the same update as torch.optim.Adam
    gradcheck  centered-difference numerical gradients and the relative error used to compare them
    data       the adding problem (Hochreiter & Schmidhuber, 1997)
    models     parameter initialisation, a recurrent model with an injected recurrence, train()
    checks     the public checks called from the notebook

Shapes follow the chapter: N batch, T time steps, D input size, H hidden size, M outputs.
"""
