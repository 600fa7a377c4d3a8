"""Package attributes imported on first use (PEP 562), so that importing a package stays light."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_attributes(
    package: str, modules: Mapping[str, Iterable[str]], eager: Iterable[str] = ()
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__all__``, ``__getattr__`` and ``__dir__`` of ``package``.

    ``modules`` maps each module to the names it defines, imported when one of them is first
    asked for; ``eager`` names are imported by the package itself. Usage, in ``__init__.py``::

        __all__, __getattr__, __dir__ = lazy_attributes(__name__, {"pkg.mod": ("f", "g")})
    """
    lazy = {name: module for module, names in modules.items() for name in names}
    public = [*eager, *lazy]
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

    return public, __getattr__, __dir__
