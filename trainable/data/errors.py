"""Dataset errors: one line naming the offending path, printed by the CLIs instead of a traceback."""
from ..errors import InputError


class DataError(InputError):
    """Missing or empty dataset directory, unknown split, or corrupt image (a ``ValueError``)."""
