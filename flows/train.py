"""The ``train`` flow: :func:`tasks.predict.training.run_training` with the run logger (``lessonlens train`` calls the
same function without a Prefect API)."""

from prefect import flow, get_run_logger

import flows  # noqa: F401  (offline Prefect defaults)
from tasks.predict.training import TrainingRun, run_training


@flow(name="train")
def train_flow(run: TrainingRun) -> dict:
    """Train (and optionally register) a model; returns its metrics and registered version."""
    result, version = run_training(run, log=get_run_logger())
    return {"version": version, "out_dir": str(result.out_dir), **{k: result.metrics.get(k) for k in ("war", "uar")}}
