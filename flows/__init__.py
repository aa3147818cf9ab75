"""Prefect flows, the deployments' entry points and the ``lessonlens`` CLI.

Offline defaults are set before Prefect is imported anywhere in the process (Dask workers import
this package when they unpickle a task): no telemetry, and a generous start-up time for the
temporary API on a 2-core machine (PLATFORM.md).
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
