"""``danube-connect-demo``: the Stripe-style payments pipeline on embedded defaults.

The embedded broker, the webhook source and the SurrealDB sink run as separate processes (their console
scripts), exactly as they would in production; this package only starts, watches and stops them, sends
the sample events and prints the result. Nothing here imports a connector package: the connectors are
found as installed console scripts (this package depends on them so that installing it installs them).

It is an example application, not part of the SDK: ``danube-connect-core`` knows nothing of it.
"""
