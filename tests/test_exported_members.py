"""Each package's ``__all__`` is exactly the public names it defines or imports (as httpx checks).

A name imported into a package's ``__init__`` for re-export must be in ``__all__``; a name in
``__all__`` must exist. Submodules become attributes of their package as soon as they are imported,
so modules count only when ``__all__`` lists them on purpose.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import drop_operator

#: Names every module gets from its own header, not part of what it exports.
_HEADER_NAMES = {"annotations", "TYPE_CHECKING"}


def _packages() -> list[str]:
    names = [drop_operator.__name__]
    names += [
        info.name
        for info in pkgutil.walk_packages(drop_operator.__path__, prefix=f"{drop_operator.__name__}.")
        if info.ispkg
    ]
    return sorted(names)


@pytest.mark.parametrize("name", _packages())
def test_all_is_exactly_what_the_package_exports(name: str) -> None:
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    listed = set(exported)
    public = {
        member
        for member, value in vars(package).items()
        if not member.startswith("_")
        and member not in _HEADER_NAMES
        and (not isinstance(value, ModuleType) or member in listed)
    }
    public |= {member for member in listed if member.startswith("__") and hasattr(package, member)}
    assert sorted(exported) == sorted(public)
