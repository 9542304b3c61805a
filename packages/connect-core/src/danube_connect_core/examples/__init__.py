"""Two tiny connectors used in the docs and tests: a counter source and a JSON-lines file sink."""
