"""The controller kit: the small helpers every reconciler needs, written once.

Controllers may import this package; they still never import each other (import-linter checks
both). Nothing here talks to the API server; the one piece of state is the process's table of node
keys that the compact cached-node sets share (:mod:`.nodeset`).
"""

from drop_operator.controllers.common.coalesce import STATUS_MAX_DELAY, STATUS_QUIET, status_base
from drop_operator.controllers.common.conditions import MAX_MESSAGE, condition, raw_condition
from drop_operator.controllers.common.indexes import (
    IMAGES_BY_PULL_POLICY,
    pull_policy_changed,
    pull_policy_of,
)
from drop_operator.controllers.common.labels import LABEL_MANAGED_BY, MANAGED_BY, label_value, short_hash
from drop_operator.controllers.common.objects import controller_uid, meta
from drop_operator.controllers.common.text import first_and_more
from drop_operator.controllers.common.times import format_time, parse_time

__all__ = [
    "IMAGES_BY_PULL_POLICY",
    "LABEL_MANAGED_BY",
    "MANAGED_BY",
    "MAX_MESSAGE",
    "STATUS_MAX_DELAY",
    "STATUS_QUIET",
    "condition",
    "controller_uid",
    "first_and_more",
    "format_time",
    "label_value",
    "meta",
    "parse_time",
    "pull_policy_changed",
    "pull_policy_of",
    "raw_condition",
    "short_hash",
    "status_base",
]
