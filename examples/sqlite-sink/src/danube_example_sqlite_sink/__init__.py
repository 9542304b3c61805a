"""Example sink: Danube topics to SQLite tables (the walk-through of docs/writing-a-connector.md)."""
