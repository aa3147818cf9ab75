"""The ``train`` flow and the handlers of ``lessonlens train``, ``evaluate`` and ``models register|list|promote``.

The work is in plain functions: ``tasks.prepare`` prepares the clips, ``models.train`` trains and evaluates on
them; the flow wraps :func:`run_training` and logs through the run logger. The CLI handlers call the plain
functions directly (no Prefect API needed), like ``analyse``; ``models promote`` emits the registry's Prefect
event when a Prefect API is configured.
"""

import argparse
import json
from pathlib import Path

from prefect import flow, get_run_logger

import flows  # noqa: F401  (offline Prefect defaults)
from models.datasets import read_dataset
from models.train import TrainResult, evaluate_registered, model_view, register_result, registered_extraction, train
from tasks.prepare import ExtractionParams, prepare_set


def parse_overrides(items: list[str] | None) -> dict:
    """``["depth=1", "widths=[8,16,32,64]"]`` → {"depth": 1, "widths": [8, 16, 32, 64]} (values are JSON)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"override {item!r}: value is not JSON ({exc.msg})") from exc
    return out


def dataset_options(kind: str, args: argparse.Namespace) -> dict:
    """Adapter options of dataset ``kind`` from the CLI arguments."""
    if kind == "daisee":
        return {"task": args.daisee_task, "state": args.daisee_state, "seed": args.seed}
    if kind == "dfew":
        return {"fold": args.fold}
    return {}


def run_training(
    dataset: str,
    path: str,
    model: str,
    variant: str = "paper",
    *,
    epochs: int = 100,
    device: str = "auto",
    store: str | None = None,
    out_dir: str | None = None,
    register: bool = False,
    resume: bool = False,
    dataset_options: dict | None = None,
    overrides: dict | None = None,
    fps: float = 5.0,
    batch_size: int = 8,
    seed: int = 0,
    log=None,
) -> tuple[TrainResult, str | None]:
    """Read the dataset, prepare its clips, train, and register the result in ``store`` when ``register``;
    returns (result, version).

    Outputs go to ``out_dir``, default ``<store>/training/<model>-<dataset>`` (``training/...`` without a
    store); the extraction cache to ``<store>/cache/clips`` (``<out_dir>/cache`` without a store).
    """
    if register and store is None:
        raise ValueError("--register needs --store")
    clips = read_dataset(dataset, path, **(dataset_options or {}))
    root = Path(store) if store else None
    out = Path(out_dir) if out_dir else (root or Path(".")) / "training" / f"{model}-{dataset}"
    cache = root / "cache" / "clips" if root else out / "cache"
    prepared = prepare_set(clips, cache, model_view(model), ExtractionParams(fps=fps))
    result = train(
        prepared, model, variant, epochs=epochs, device=device, out_dir=out, overrides=overrides,
        batch_size=batch_size, seed=seed, resume=resume, log=log,
    )  # fmt: skip
    version = register_result(store, result) if register else None
    return result, version


@flow(name="train")
def train_flow(
    dataset: str,
    path: str,
    model: str,
    variant: str = "paper",
    epochs: int = 100,
    device: str = "auto",
    store: str | None = None,
    register_model: bool = False,
    resume: bool = False,
    dataset_options: dict | None = None,
    overrides: dict | None = None,
) -> dict:
    """Train (and optionally register) a model; returns its metrics and registered version."""
    result, version = run_training(
        dataset, path, model, variant, epochs=epochs, device=device, store=store, register=register_model,
        resume=resume, dataset_options=dataset_options, overrides=overrides, log=get_run_logger(),
    )  # fmt: skip
    return {"version": version, "out_dir": str(result.out_dir), **{k: result.metrics.get(k) for k in ("war", "uar")}}


# ------------------------------------------------------------------------------------------- CLI


def train_main(args: argparse.Namespace) -> int:
    """``lessonlens train --dataset KIND PATH --model NAME ...``: train, print the metrics, maybe register."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result, version = run_training(
        args.dataset, args.path, args.model, args.variant, epochs=args.epochs, device=args.device,
        store=args.store, out_dir=args.out, register=args.register, resume=args.resume,
        dataset_options=dataset_options(args.dataset, args), overrides=parse_overrides(args.override),
        fps=args.fps, batch_size=args.batch_size, seed=args.seed,
    )  # fmt: skip
    metrics = result.metrics
    if "war" in metrics:
        print(f"{metrics['split']}: WAR {metrics['war']:.4f}, UAR {metrics['uar']:.4f} on {metrics['n']} clips")
    print(f"outputs: {result.out_dir}")
    if version:
        print(f"registered {args.model} {version} in {args.store}")
    return 0


def evaluate_main(args: argparse.Namespace) -> int:
    """``lessonlens evaluate --store S --model NAME --version V --dataset KIND PATH``: metrics of a version."""
    clips = read_dataset(args.dataset, args.path, **dataset_options(args.dataset, args))
    store = Path(args.store)
    out = Path(args.out or store / "evaluations" / args.model / args.version / f"{args.dataset}-{args.split}")
    params = ExtractionParams(**registered_extraction(store, args.model, args.version))
    prepared = prepare_set(clips, store / "cache" / "clips", model_view(args.model), params, splits=[args.split])
    metrics = evaluate_registered(
        store, args.model, args.version, prepared, split=args.split, device=args.device, out_dir=out
    )
    print(f"{args.model} {args.version} on {args.dataset} {args.split}: WAR {metrics['war']:.4f}, "
          f"UAR {metrics['uar']:.4f} ({metrics['n']} clips); {out}")  # fmt: skip
    return 0


def models_register_main(args: argparse.Namespace) -> int:
    """``lessonlens models register --store S --checkpoint DIR``: register the last epoch of a training run.

    Task and licence come from the run (its dataset) unless ``--task`` / ``--licence`` are given.
    """
    import torch

    from models import build_model
    from models.registry import register

    folder = Path(args.checkpoint)
    if not (folder / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"no checkpoint.pt in {folder} (the --out folder of lessonlens train)")
    state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    model = build_model(state["model"], state["variant"], **state["config"])
    model.load_state_dict(state["state_dict"])
    version = register(
        args.store, state["model"], model, variant=state["variant"], metrics=metrics,
        data_fingerprint=state["data_fingerprint"], task=args.task or state["task"], classes=state["classes"],
        licence=args.licence or state["licence"],
    )  # fmt: skip
    print(f"registered {state['model']} {version} in {args.store}")
    return 0


def models_list_main(args: argparse.Namespace) -> int:
    """``lessonlens models list --store S [--model NAME] [--json]``: registered versions."""
    from models.registry import list_versions

    records = list_versions(args.store, args.model)
    if args.json:
        print(json.dumps(records, indent=2, default=str))
        return 0
    if not records:
        print("(no registered models)")
    for r in records:
        metrics = r["metrics"]
        score = f"WAR {metrics['war']:.3f} UAR {metrics['uar']:.3f}" if "war" in metrics else "no metrics"
        mark = " (promoted)" if r["promoted"] else ""
        print(f"{r['name']} {r['version']}{mark}: task {r['task']}, variant {r['variant']}, {score}, "
              f"registered {r['registered_at']}, licence {r['licence']}")  # fmt: skip
    return 0


def models_promote_main(args: argparse.Namespace) -> int:
    """``lessonlens models promote --store S --model NAME --version V``: make it its task's model."""
    from models.registry import promote

    pointer = promote(args.store, args.model, args.version)
    print(f"promoted {args.model} {args.version} for task {pointer['task']}")
    return 0
