"""Package attributes imported on first use (PEP 562), so that importing a package stays light."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_attributes(
    package: str, lazy: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    ``lazy`` maps each name to the module that defines it, imported when the name is first asked
    for; ``public`` is what ``dir(package)`` lists (its ``__all__``). Usage, in ``__init__.py``::

        __getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
    """
    listed = sorted(public)

    def __getattr__(name: str) -> Any:
        if name in lazy:
            value = getattr(importlib.import_module(lazy[name]), name)
            # Kept on the package, so later look-ups no longer come through here.
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return listed

    return __getattr__, __dir__
