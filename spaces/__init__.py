"""Named search spaces: ``get_space(name_or_file)``, ``list_spaces()``, ``register(space)``.

Each module of this package defines one space and registers it; importing ``spaces``
does not import torch.
"""
from .base import (MS_SSIM_LAMBDAS, OFF_ID, OFFICIAL_LAMBDAS, Configuration, Param, SearchSpace, choice,
                   field_name, truncation_epochs)
from .registry import get_space, list_spaces, register, registry

__all__ = ["MS_SSIM_LAMBDAS", "OFF_ID", "OFFICIAL_LAMBDAS", "Configuration", "Param", "SearchSpace", "choice",
           "field_name", "get_space", "list_spaces", "register", "registry", "truncation_epochs"]
