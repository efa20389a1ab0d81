"""One HPCM training run: model, entropy coding, regularizers, loss, data, checkpoints.

Nothing in this package imports Ray except the thin adapter in ``trainable.tune``.
"""
import warnings

# compressai imports torch_geometric, whose use of torch.jit.script warns on every
# start-up; keep our CLIs' stderr for our own one-line messages.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
