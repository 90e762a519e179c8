"""Every metric pushmail exports, made once per process at import.

Label values come from fixed sets in the code (services, outcomes, the IMAP command
table), never from what a peer sends (no user names, no addresses), so the number of
series is bounded. The hot paths (an IMAP command, a delivery) look their child up
in a dict built here rather than calling ``labels()``, which takes a lock and
formats a key on each call.

Gauges say how their values from several processes combine: ``livesum`` adds up the
live processes, ``liveall`` keeps one series per process (a ``pid`` label is added).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Where the metrics are registered when not in multi-process mode (a server run
# inside a test process): the exposition reads this registry then.
REGISTRY = CollectorRegistry(auto_describe=True)

SERVICES = ("imap", "mx", "submission", "lmtp")
SESSION_STATES = ("active", "idling", "hibernated")
LOGIN_RESULTS = ("ok", "failed", "refused")

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

SESSIONS = Gauge(
    "pushmail_sessions",
    "IMAP sessions by state, all workers",
    ["state"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
WORKER_SESSIONS = Gauge(
    "pushmail_worker_sessions",
    "IMAP sessions by state, per worker",
    ["worker", "state"],
    multiprocess_mode="liveall",
    registry=REGISTRY,
)
WORKER_CONNECTIONS = Gauge(
    "pushmail_worker_connections",
    "Connections holding a descriptor (IMAP, SMTP, LMTP), per worker",
    ["worker"],
    multiprocess_mode="liveall",
    registry=REGISTRY,
)
WORKER_STARTED = Gauge(
    "pushmail_worker_start_time_seconds",
    "When the worker process started (Unix time)",
    ["worker"],
    multiprocess_mode="liveall",
    registry=REGISTRY,
)
WORKER_LOOP_LAG = Gauge(
    "pushmail_worker_loop_lag_seconds",
    "Worst event-loop lag of the last sampling period, per worker",
    ["worker"],
    multiprocess_mode="liveall",
    registry=REGISTRY,
)
LISTENERS = Gauge(
    "pushmail_listener_info",
    "A listening socket (1), by service and address",
    ["service", "address"],
    multiprocess_mode="liveall",
    registry=REGISTRY,
)
BUILD = Gauge(
    "pushmail_build_info",
    "The running version (1)",
    ["version"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
CONNECTIONS = Counter(
    "pushmail_connections",
    "Connections accepted, by service",
    ["service"],
    registry=REGISTRY,
)
LOGINS = Counter(
    "pushmail_logins",
    "Login attempts by service and result (refused: by a guessing limit, unchecked)",
    ["service", "result"],
    registry=REGISTRY,
)
COMMANDS = Histogram(
    "pushmail_imap_command_seconds",
    "IMAP commands by name: time from the command read to its reply written",
    ["command"],
    buckets=_FAST,
    registry=REGISTRY,
)
DELIVERY_SECONDS = Histogram(
    "pushmail_delivery_seconds",
    "Messages stored (for one recipient at least): end of DATA to the durable reply",
    ["service"],
    buckets=_SLOW,
    registry=REGISTRY,
)
DELIVERY_RECIPIENTS = Counter(
    "pushmail_delivery_recipients",
    "Recipients of received messages by outcome (stored, refused 5xx, deferred 4xx)",
    ["service", "outcome"],
    registry=REGISTRY,
)
WAKEUP_SECONDS = Histogram(
    "pushmail_wakeup_seconds",
    "Delivery committed to EXISTS written to the first idling session of that mailbox",
    buckets=_SLOW,
    registry=REGISTRY,
)
LOOP_LAG = Histogram(
    "pushmail_event_loop_lag_seconds",
    "How late a short timer fired: time the event loop was busy elsewhere",
    buckets=_FAST[1:],
    registry=REGISTRY,
)
ALERT_QUEUE = Gauge(
    "pushmail_alert_queue",
    "Alerts waiting to be sent (worker 0 runs the queue)",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
ALERTS = Counter(
    "pushmail_alerts",
    "Alert send attempts by outcome (ok, retry, failed, gone, expired)",
    ["outcome"],
    registry=REGISTRY,
)
STORE_ERRORS = Counter(
    "pushmail_store_errors",
    "Store failures: a store job that raised, a delivery that could not commit",
    ["where"],
    registry=REGISTRY,
)
BUS_ERRORS = Counter(
    "pushmail_bus_errors",
    "Change hints lost between processes (dropped, send or receive failed)",
    ["kind"],
    registry=REGISTRY,
)

# The hot paths' children, made once.


class _Children(dict[str, Histogram]):
    """A metric's children by label value, each made on first use. For the IMAP
    commands: the value is a command's ``name``, which only the command table's
    rows have (anything else is refused as BAD before it runs), so they stay
    bounded without this module importing the table and the session layer under it."""

    def __init__(self, parent: Histogram) -> None:
        super().__init__()
        self._parent = parent

    def __missing__(self, name: str) -> Histogram:
        child = self[name] = self._parent.labels(name)
        return child


COMMAND_SECONDS = _Children(COMMANDS)
CONNECTS = {service: CONNECTIONS.labels(service) for service in SERVICES}
_INGRESS = ("mx", "submission", "lmtp")
DELIVERY_TIMES = {service: DELIVERY_SECONDS.labels(service) for service in _INGRESS}
RECIPIENTS = {
    (service, outcome): DELIVERY_RECIPIENTS.labels(service, outcome)
    for service in _INGRESS
    for outcome in ("stored", "refused", "deferred")
}
