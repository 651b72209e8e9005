"""shiftlab: shift training of transformer language models."""

__version__ = "0.1.0"

from .config import register_resolvers as _register_resolvers  # noqa: E402

_register_resolvers()
