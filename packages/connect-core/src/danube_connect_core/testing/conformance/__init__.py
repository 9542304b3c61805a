"""The conformance kit: the kill, restart, outage and bad-input checks every connector registers for.

A sink connector registers by describing its real target (:class:`SinkTarget`: open it, write the TOML
that points the sink at it, read back what it stored) and its :class:`SinkCase`; then either subclass
:class:`SinkConformance` in its tests (five pytest tests) or call the ``check_*`` functions from its own.
docs/writing-a-connector.md walks through it with the example sink in connectors/example-sqlite.

- target: :class:`SinkTarget`, :class:`SinkCase`, :class:`Outage`, :func:`payload`, :func:`produce_records`
- outages: :func:`restart_outage`, :func:`disk_full_outage`, :class:`TcpProxy`
- checks: :func:`check_sigkill_restart`, :func:`check_sigterm_drains`, :func:`check_target_outage`,
  :func:`check_broker_outage`, :func:`check_bad_input`; as pytest tests: :class:`SinkConformance`
- sources: :class:`SourceUpstream`, :class:`SourceCase`, :func:`check_source_sigterm_restart`,
  :func:`check_source_bad_input`
- probes and verdicts for checks of your own: :func:`wait_until`, :func:`start_ready`, :func:`metric`,
  :func:`backlog`, :func:`acked_ids`, :func:`assert_exactly_once` ...
"""

from danube_connect_core.testing.conformance.outages import TcpProxy, disk_full_outage, restart_outage
from danube_connect_core.testing.conformance.probes import (
    BROKER_SETTINGS,
    acked_ids,
    backlog,
    conformance_broker,
    drain_and_stop,
    exit_code,
    exited_cleanly,
    metric,
    ready_status,
    sent_total,
    start_ready,
    stop_cleanly,
    topic_messages,
    wait_until,
)
from danube_connect_core.testing.conformance.sink_checks import (
    OUTAGE_RETRY,
    check_bad_input,
    check_broker_outage,
    check_sigkill_restart,
    check_sigterm_drains,
    check_target_outage,
)
from danube_connect_core.testing.conformance.source import (
    SourceCase,
    SourceUpstream,
    check_source_bad_input,
    check_source_sigterm_restart,
)
from danube_connect_core.testing.conformance.suite import SinkConformance
from danube_connect_core.testing.conformance.target import (
    PARTITIONS,
    WINDOW,
    Outage,
    OutageFactory,
    SinkCase,
    SinkTarget,
    payload,
    produce_records,
)
from danube_connect_core.testing.conformance.verdicts import (
    assert_acked_stored,
    assert_exactly_once,
    assert_no_lost_acks,
)

__all__ = [
    "BROKER_SETTINGS",
    "OUTAGE_RETRY",
    "PARTITIONS",
    "WINDOW",
    "Outage",
    "OutageFactory",
    "SinkCase",
    "SinkConformance",
    "SinkTarget",
    "SourceCase",
    "SourceUpstream",
    "TcpProxy",
    "acked_ids",
    "assert_acked_stored",
    "assert_exactly_once",
    "assert_no_lost_acks",
    "backlog",
    "check_bad_input",
    "check_broker_outage",
    "check_sigkill_restart",
    "check_sigterm_drains",
    "check_source_bad_input",
    "check_source_sigterm_restart",
    "check_target_outage",
    "conformance_broker",
    "disk_full_outage",
    "drain_and_stop",
    "exit_code",
    "exited_cleanly",
    "metric",
    "payload",
    "produce_records",
    "ready_status",
    "restart_outage",
    "sent_total",
    "start_ready",
    "stop_cleanly",
    "topic_messages",
    "wait_until",
]
