"""Errors caused by the user's input (files, values); CLIs print them as one line and exit 2."""


class InputError(ValueError):
    """Base class: bad input that the user can fix; the message is one self-contained line."""


class CheckpointError(InputError):
    """Missing, corrupt or incompatible checkpoint."""


class BitstreamError(InputError):
    """Not an HPCM bitstream, truncated, or corrupted."""


class TrainingError(RuntimeError):
    """A run that cannot continue (non-finite loss); the message names epoch and step."""
