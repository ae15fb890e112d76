"""Prometheus metrics of the runtime, under the names controller-runtime and client-go use.

Defined once at import on the default registry, so dashboards written for Go operators work unchanged.
Every label here has bounded cardinality: controller names, queue names, HTTP verbs and status codes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
_QUEUE_BUCKETS = tuple(1e-8 * 10**i for i in range(10))  # 10 ns .. 10 s, as client-go

REST_REQUESTS = Counter(
    "rest_client_requests_total",
    "Number of HTTP requests to the API server, by status code (or <error>) and method.",
    ["code", "method"],
)
REST_LATENCY = Histogram(
    "rest_client_request_duration_seconds",
    "Latency of API server requests until the response headers arrived, by verb.",
    ["verb"],
    buckets=_LATENCY_BUCKETS,
)

RECONCILE_TOTAL = Counter(
    "controller_runtime_reconcile_total",
    "Total number of reconciliations per controller and result (success, error, requeue, requeue_after).",
    ["controller", "result"],
)
RECONCILE_ERRORS = Counter(
    "controller_runtime_reconcile_errors_total",
    "Total number of reconciliation errors per controller.",
    ["controller"],
)
RECONCILE_TIME = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller.",
    ["controller"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
ACTIVE_WORKERS = Gauge(
    "controller_runtime_active_workers",
    "Number of currently used workers per controller.",
    ["controller"],
)
MAX_CONCURRENT = Gauge(
    "controller_runtime_max_concurrent_reconciles",
    "Maximum number of concurrent reconciles per controller.",
    ["controller"],
)

WQ_DEPTH = Gauge("workqueue_depth", "Current depth of workqueue.", ["name"])
WQ_ADDS = Counter("workqueue_adds_total", "Total number of adds handled by workqueue.", ["name"])
WQ_RETRIES = Counter("workqueue_retries_total", "Total number of retries handled by workqueue.", ["name"])
WQ_QUEUE_DURATION = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested.",
    ["name"],
    buckets=_QUEUE_BUCKETS,
)
WQ_WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes.",
    ["name"],
    buckets=_QUEUE_BUCKETS,
)
WQ_UNFINISHED = Gauge(
    "workqueue_unfinished_work_seconds",
    "Seconds of work in progress that has not been observed by work_duration; large values mean stuck work.",
    ["name"],
)
WQ_LONGEST = Gauge(
    "workqueue_longest_running_processor_seconds",
    "How many seconds has the longest running processor for workqueue been running.",
    ["name"],
)

INFORMER_EVENTS = Counter(
    "drop_informer_watch_events_total",
    "Watch events received per resource and event type.",
    ["resource", "type"],
)
INFORMER_RELISTS = Counter(
    "drop_informer_lists_total",
    "Full LISTs per resource; more than one means reconnects that could not resume (410) or first sync.",
    ["resource"],
)
INFORMER_RECONNECTS = Counter(
    "drop_informer_watch_restarts_total",
    "Watch (re)connections per resource and the reason the previous one ended.",
    ["resource", "reason"],
)
INFORMER_LAST_EVENT = Gauge(
    "drop_informer_last_watch_activity_timestamp_seconds",
    "Unix time of the last watch event (bookmarks included) per resource: a frozen watch stops moving it.",
    ["resource"],
)
INFORMER_OBJECTS = Gauge("drop_informer_cached_objects", "Objects in the informer cache.", ["resource"])

LEADER = Gauge("leader_election_master_status", "1 while this instance holds the lease.", ["name"])
EVENTS_EMITTED = Counter(
    "drop_events_total", "Kubernetes Events recorded, by whether a new Event or a series bump.", ["kind"]
)
