"""Danube Connect source: Kafka topics to Danube topics."""
