"""A small controller-runtime for Python on kubernetes-asyncio.

Generic over any resource; knows nothing of drop's own kinds. The pieces: a dict-based
:class:`KubeClient`, shared :class:`Informer` caches, a rate-limited workqueue feeding
:class:`Controller` workers, and a :class:`Manager` that adds leader election, probes, metrics and
graceful shutdown.
"""

from drop_operator.runtime import predicates
from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.controller import Controller, Reconcile, Result, Trigger
from drop_operator.runtime.errors import ApiError
from drop_operator.runtime.events import EventRecorder
from drop_operator.runtime.informer import Informer
from drop_operator.runtime.leaderelection import LeadershipLostError
from drop_operator.runtime.manager import CacheSyncTimeoutError, Manager
from drop_operator.runtime.resources import Resource, object_key, split_key
from drop_operator.runtime.workqueue import Debounce

__all__ = [
    "ApiError",
    "CacheSyncTimeoutError",
    "Controller",
    "Debounce",
    "EventRecorder",
    "Informer",
    "KubeClient",
    "LeadershipLostError",
    "Manager",
    "Reconcile",
    "Resource",
    "Result",
    "Trigger",
    "object_key",
    "predicates",
    "split_key",
]
