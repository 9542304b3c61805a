"""``python -m danube_embedded_broker`` = the ``danube-embedded-broker`` console script."""

from danube_embedded_broker.cli import main

main()
