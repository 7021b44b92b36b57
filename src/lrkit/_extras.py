"""Optional dependencies: import one, or say which extra of lrkit installs it.

lrkit's core needs only torch and numpy. Plotting (``lrkit[plot]``), the command line
(``lrkit[cli]``), the built-in tasks (``lrkit[tasks]``) and each adapter are extras, imported
when first used; :func:`require` and :func:`require_installed` turn a missing module into a
:class:`MissingExtraError` (an ``ImportError``) that names the extra, e.g.
``plotting needs matplotlib: pip install "lrkit[plot]"``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["MissingExtraError", "require", "require_installed"]

_DISTRIBUTIONS = {"sklearn": "scikit-learn"}
"""Import names whose pip distribution is named differently."""


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``; if it is not installed, raise :class:`MissingExtraError` naming
    ``lrkit[extra]``.

    Args:
        module: Dotted module name, e.g. ``"matplotlib.figure"``.
        extra: The lrkit extra that installs it, e.g. ``"plot"``.
        what: What needs it, for the message, e.g. ``"plotting"``.

    A module that is installed but fails to import for another reason (one of its own
    dependencies missing, an error while importing) raises its own error unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.partition(".")[0]
        if exc.name not in (top, module):
            raise
        raise _missing(module, extra, what) from None


def require_installed(module: str, extra: str, what: str) -> None:
    """Check that ``module`` can be imported, without importing it; if it cannot be found,
    raise :class:`MissingExtraError` naming ``lrkit[extra]`` (see :func:`require`)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise _missing(module, extra, what)


def _missing(module: str, extra: str, what: str) -> MissingExtraError:
    top = module.partition(".")[0]
    package = _DISTRIBUTIONS.get(top, top)
    return MissingExtraError(f'{what} needs {package}: pip install "lrkit[{extra}]"', name=top)
