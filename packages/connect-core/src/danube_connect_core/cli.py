"""The `danube-connect` umbrella command (subcommands are added as the runtime grows)."""


def main() -> None:
    raise SystemExit("danube-connect: no subcommands yet")
