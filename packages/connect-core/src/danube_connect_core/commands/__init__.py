"""Subcommands of `danube-connect`, one module each (see :mod:`danube_connect_core.cli`)."""
