"""Danube Connect sink: Danube topics to SurrealDB tables."""
