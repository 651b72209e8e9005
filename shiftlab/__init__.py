"""shiftlab: shift training of transformer language models."""

__version__ = "0.1.0"

from .config import register_resolvers as _register_resolvers  # noqa: E402
from .config_schema import register as _register_schema  # noqa: E402

_register_resolvers()
_register_schema()  # conf/train.yaml's defaults list starts with it
