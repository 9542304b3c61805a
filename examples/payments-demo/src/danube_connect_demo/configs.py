"""The connector configurations the demo writes into its data directory.

They are the example_e2e TOMLs with local values: the embedded broker's URL, loopback hosts, ports
chosen by the OS (0), and the embedded SurrealDB engine (``surrealkv://`` under the data directory)
instead of a SurrealDB server. The sink's read-only query API is switched on: the surrealkv store belongs
to the sink process, so the demo reads the counts through it (see danube_sink_surrealdb.query_api).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from danube_connect_demo.payments import PAYMENT_SCHEMA

__all__ = ["API_KEY", "PATH", "SUBJECT", "TABLE", "TOPIC", "DemoFiles", "write_configs"]

TOPIC = "/stripe/payments"
SUBJECT = "stripe-payment-v1"
TABLE = "stripe_payments"
PATH = "/webhooks/stripe/payments"
API_KEY = "demo-api-key-e2e-12345"


@dataclass(frozen=True)
class DemoFiles:
    webhook_config: Path
    sink_config: Path
    schema: Path
    surreal_store: Path


def write_configs(data_dir: Path, broker_url: str, webhook_port: int) -> DemoFiles:
    """Write the schema and both TOMLs under ``data_dir``; returns their paths."""
    conf = data_dir / "config"
    (conf / "schemas").mkdir(parents=True, exist_ok=True)
    schema = conf / "schemas" / "payment.json"
    schema.write_text(json.dumps(PAYMENT_SCHEMA, indent=2) + "\n")
    store = data_dir / "surrealdb"
    webhook = conf / "webhook-connector.toml"
    webhook.write_text(
        f"""\
# Written by `danube-connect-demo` (example_e2e/webhook-connector.toml with local values).
danube_service_url = "{broker_url}"
connector_name = "webhook-source-demo"

[processing]
metrics_host = "127.0.0.1"
metrics_port = 0

[[schemas]]
topic = "{TOPIC}"
subject = "{SUBJECT}"
schema_type = "json_schema"
schema_file = "schemas/payment.json"
auto_register = true

[webhook]
host = "127.0.0.1"
port = {webhook_port}

# The key comes from WEBHOOK_API_KEY (set by the demo); clients send it as `x-api-key`.
[webhook.auth]
type = "api_key"
header = "x-api-key"
key_env = "WEBHOOK_API_KEY"

[[webhook.endpoints]]
path = "{PATH}"
danube_topic = "{TOPIC}"
partitions = 4
reliable_dispatch = true
"""
    )
    sink = conf / "surrealdb-sink-connector.toml"
    sink.write_text(
        f"""\
# Written by `danube-connect-demo` (example_e2e/surrealdb-sink-connector.toml with local values).
danube_service_url = "{broker_url}"
connector_name = "surrealdb-sink-demo"

[processing]
metrics_host = "127.0.0.1"
metrics_port = 0

[retry]
retry_backoff_ms = 200
max_backoff_ms = 2000

[surrealdb]
url = "surrealkv://{store}"
namespace = "default"
database = "default"

[surrealdb.query_api]
enabled = true
host = "127.0.0.1"
port = 0

[[surrealdb.topic_mappings]]
topic = "{TOPIC}"
subscription = "surrealdb-payment-sink"
subscription_type = "Shared"
table = "{TABLE}"
expected_schema_subject = "{SUBJECT}"
batch_size = 50
flush_interval_ms = 1000
"""
    )
    return DemoFiles(webhook, sink, schema, store)
