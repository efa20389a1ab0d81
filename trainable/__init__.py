"""One HPCM training run: model, entropy coding, regularizers, loss, data, checkpoints.

Nothing in this package imports Ray except the thin adapter in ``trainable.tune``.
"""
