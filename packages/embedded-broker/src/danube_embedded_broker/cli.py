"""Console entry point for `danube-embedded-broker` (placeholder until the broker lands)."""


def main() -> None:
    raise SystemExit("danube-embedded-broker: not implemented yet")
