"""kubernetes-asyncio's transport and configuration loaders, without its generated models.

The operator sends raw requests through the ``ApiClient``'s aiohttp session and encodes and decodes
the JSON itself (:mod:`.client`), so of kubernetes-asyncio it uses the configuration loaders
(kubeconfig with its exec, OIDC and GCP auth, in-cluster ServiceAccount), the auth settings and the
transport. But importing anything from the library runs ``kubernetes_asyncio/__init__.py``, which
imports every generated API class and model: about 1 100 modules, 37 MiB of resident memory and
most of a second at start-up, for classes this process never instantiates.

:func:`load` imports what is used and nothing else: before the library is imported, the packages
``kubernetes_asyncio``, ``kubernetes_asyncio.client`` and ``kubernetes_asyncio.client.models`` are
registered as *lazy* packages: their modules exist with the real ``__path__`` (so submodules load
from the installed files as usual) but their ``__init__`` has not run. Reading an attribute a lazy
package does not have yet loads it in this order: a submodule of that name; for ``ApiClient`` and
``Configuration``, the one submodule that defines them; anything else runs the package's real
``__init__`` once (so ``kubernetes_asyncio.client.V1Pod``, or the library's own model
deserialisation, still works: it just costs what it always cost). A process that imported the
library before keeps it as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

__all__ = ["load"]

_ROOT = "kubernetes_asyncio"
# Names the lean path reads from a lazy package, and the submodule that defines each.
_DEFINED_IN = {
    f"{_ROOT}.client": {"ApiClient": "api_client", "Configuration": "configuration"},
}
_LOCK = threading.RLock()


def _lazy_package(name: str) -> types.ModuleType:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an installed package")
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    defined_in = _DEFINED_IN.get(name, {})
    state = {"full": False}

    def __getattr__(attr: str) -> Any:  # noqa: N807  (PEP 562: a module's own __getattr__)
        with _LOCK:
            if attr in defined_in:
                return getattr(importlib.import_module(f"{name}.{defined_in[attr]}"), attr)
            if importlib.util.find_spec(f"{name}.{attr}") is not None:
                return importlib.import_module(f"{name}.{attr}")
            if not state["full"]:
                state["full"] = True
                loader.exec_module(module)  # the package's real __init__, once
                if attr in module.__dict__:
                    return module.__dict__[attr]
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def _install() -> None:
    with _LOCK:
        if _ROOT in sys.modules:
            return
        for name in (_ROOT, f"{_ROOT}.client", f"{_ROOT}.client.models"):
            module = _lazy_package(name)
            sys.modules[name] = module
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)


def load() -> tuple[type[Any], type[Any], Any]:
    """``(ApiClient, Configuration, kubernetes_asyncio.config)``, importing only what they need."""
    _install()
    from kubernetes_asyncio import config
    from kubernetes_asyncio.client.api_client import ApiClient
    from kubernetes_asyncio.client.configuration import Configuration

    return ApiClient, Configuration, config
