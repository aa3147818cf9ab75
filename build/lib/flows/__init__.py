"""Prefect flows, the deployments' entry points, where flows run (``engine``: the Prefect API, the Dask
cluster and every fan-out over it) and the ``lessonlens`` CLI (``cli``: every command's handler).

Flows are thin wiring: they turn parameters into a ``tasks.store.Store`` once, call the functions of
``tasks`` and record what those return. May import: ``tasks`` and ``models``.

Offline defaults are set before Prefect is imported anywhere in the process (Dask workers import
this package when they unpickle a task): no telemetry, and a generous start-up time for the
temporary API on a 2-core machine (PLATFORM.md).
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
