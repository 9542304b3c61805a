"""Testing kit: run sources and sinks against an embedded broker, produce, collect, inject failures.

- :func:`embedded_broker` - an in-process broker (async context manager yielding its URL);
- :func:`make_config`, :func:`start_runtime` - run a connector in this event loop;
- :func:`produce`, :func:`consume` - put records on a topic, read them back (e.g. a dead-letter topic);
- :class:`MemorySink` - collects what a sink runtime wrote;
- :func:`write_batch` - hand records to a sink's ``write`` as one batch, as the runtime would (no broker);
- :class:`FaultySink` - raises Retryable N times, always fails, rejects chosen records,
  crashes the process at record K, writes slowly;
- :class:`ConnectorProcess` - ``danube-connect run`` as a real process; :func:`http_get` for its endpoints;
  :func:`process_env` points a shipped TOML at the test's broker;
- :func:`free_port` - a free loopback port for a server a test starts.
"""

from danube_connect_core.testing.faulty_sink import FaultySink, FaultySinkSettings
from danube_connect_core.testing.harness import (
    ConnectorProcess,
    RunningRuntime,
    consume,
    embedded_broker,
    free_port,
    http_get,
    make_config,
    process_env,
    produce,
    start_runtime,
)
from danube_connect_core.testing.memory_sink import MemorySink
from danube_connect_core.testing.sink_batches import write_batch

__all__ = [
    "ConnectorProcess",
    "FaultySink",
    "FaultySinkSettings",
    "MemorySink",
    "RunningRuntime",
    "consume",
    "embedded_broker",
    "free_port",
    "http_get",
    "make_config",
    "process_env",
    "produce",
    "start_runtime",
    "write_batch",
]
