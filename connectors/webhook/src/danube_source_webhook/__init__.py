"""Danube Connect webhook source: HTTP webhooks -> Danube topics, answered 2xx only after the broker's ack."""

from danube_source_webhook.connector import WebhookSource, main
from danube_source_webhook.settings import WebhookSettings

__all__ = ["WebhookSettings", "WebhookSource", "main"]
