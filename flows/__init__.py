"""Prefect flows and the ``samatlas`` command line: what a user starts."""

import os

# Prefect's temporary server can take longer than its 20 s default to start on a 2-core machine,
# and nothing here may phone home; users can still override both.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
