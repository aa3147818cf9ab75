"""Training and evaluating the papers' models on labelled datasets: read → prepare clips → train / evaluate.

The steps are in ``models.datasets`` (dataset adapters), ``tasks.predict.prepare`` (clip preparation through the
nightly extraction code) and ``models.train``; this module chains them for the ``train`` flow and the CLI.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from models.datasets import read_dataset
from models.train import TrainResult, evaluate_registered, model_view, register_result, registered_extraction, train
from tasks.predict.prepare import ExtractionParams, prepare_set
from tasks.store import Store


@dataclass(frozen=True)
class TrainingRun:
    """What ``lessonlens train`` and the ``train`` flow are given (one list of parameters for both).

    Args:
        dataset: ``daisee``, ``dfew`` or ``manifest`` (``models.datasets.read_dataset``).
        path: the dataset root or manifest CSV.
        model: a model name (``models.available_models``); variant: one of its ``VARIANTS``.
        store: where the clip cache lives and the model is registered (``register``).
        out_dir: outputs (checkpoint, metrics); default ``<store>/training/<model>-<dataset>``.
        dataset_options: adapter options (DAiSEE task/state/seed, DFEW fold).
        overrides: model config fields to replace.
        fps: clip sampling rate of the preparation.
    """

    dataset: str
    path: str
    model: str
    variant: str = "paper"
    epochs: int = 100
    device: str = "auto"
    store: str | None = None
    out_dir: str | None = None
    register: bool = False
    resume: bool = False
    dataset_options: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    fps: float = ExtractionParams.fps
    batch_size: int = 8
    seed: int = 0


def run_training(run: TrainingRun, log: logging.Logger | None = None) -> tuple[TrainResult, str | None]:
    """Read the dataset, prepare its clips, train, and register the result when ``run.register``;
    returns (result, version).

    The extraction cache is ``<store>/cache/clips`` (``<out_dir>/cache`` without a store).
    """
    if run.register and run.store is None:
        raise ValueError("--register needs --store")
    clips = read_dataset(run.dataset, run.path, **run.dataset_options)
    root = Path(run.store) if run.store else None
    out = Path(run.out_dir) if run.out_dir else (root or Path(".")) / "training" / f"{run.model}-{run.dataset}"
    store = Store(root) if root else None
    cache = store.training_cache() if store else out / "cache"
    erased = store.training_exclusions() if store else set()  # their crops never come back into the store
    prepared = prepare_set(clips, cache, model_view(run.model), ExtractionParams(fps=run.fps), erased=erased)
    result = train(
        prepared, run.model, run.variant, epochs=run.epochs, device=run.device, out_dir=out,
        overrides=run.overrides or None, batch_size=run.batch_size, seed=run.seed, resume=run.resume, log=log,
    )  # fmt: skip
    version = register_result(run.store, result) if run.register else None
    return result, version


def evaluate_version(
    store: str | Path,
    model: str,
    version: str,
    dataset: str,
    path: str,
    *,
    split: str = "test",
    device: str = "auto",
    out_dir: str | Path | None = None,
    dataset_options: dict | None = None,
) -> tuple[dict, Path]:
    """Metrics of registered ``model`` ``version`` on a dataset split, its clips prepared the way the
    version's training clips were; returns (metrics, output folder)."""
    clips = read_dataset(dataset, path, **(dataset_options or {}))
    store = Path(store)
    out = Path(out_dir or store / "evaluations" / model / version / f"{dataset}-{split}")
    params = ExtractionParams(**registered_extraction(store, model, version))
    st = Store(store)
    prepared = prepare_set(clips, st.training_cache(), model_view(model), params, splits=[split],
                           erased=st.training_exclusions())  # fmt: skip
    metrics = evaluate_registered(store, model, version, prepared, split=split, device=device, out_dir=out)
    return metrics, out
