"""Training and evaluation of the papers' models on prepared clips (:class:`models.datasets.PreparedSet`).

The clips are prepared first, by the caller (``tasks.predict.prepare.prepare_set``: decode, faces, crops, cache); the
functions here only read the prepared cache files.

Training (paper 2, §4.3, for every model): SGD, learning rate 1e-3, momentum 0.9, weight decay 1e-4;
StepLR halving the rate every 7 epochs - except DAiSEE, which gets a WeightedRandomSampler (each clip
drawn with probability ∝ 1 / its class's clip count, with replacement, one epoch = as many draws as
clips) and CosineAnnealingWarmRestarts(T_0 = 10, T_mult = 2); both schedulers step once per epoch.
Clips are U segments × V frames (``models.datasets.sample_indices``), U × V = the model's
``num_frames``; augmentation is per clip (``models.datasets.ClipAugment``). teacher_expression trained
with ``label_correction`` uses paper 1's loss (eq 10) and, from epoch ``relabel_from`` on, re-labels the
low-weight group of each batch (eq 7); corrected labels persist for the rest of the run (in the
checkpoint too). Its landmarks, and teacher_gesture's keypoints, come from the prepared clips.

Reproducibility: each epoch seeds torch with (seed, epoch) and draws its shuffling and augmentation from
(seed, epoch, clip), so on CPU a run resumed from a checkpoint ends with the same weights as one that
never stopped. A checkpoint (``<out_dir>/checkpoint.pt``, written atomically after every epoch) holds
weights, optimizer and scheduler state, the epoch, the optimizer step count, the current labels and the
history. Mixed precision: bf16 autocast on CUDA, fp32 on CPU.

Evaluation: clips sampled at the segments' middles, no augmentation; WAR (accuracy), UAR (mean recall of
the classes present in the evaluated clips), recall per class (null for a class without clips) and the
confusion matrix (rows true, columns predicted), saved as ``metrics.json``, ``confusion.csv`` and
``confusion.png``.
"""

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from models import build_model, model_module
from models.datasets import MODEL_VIEWS, SPLITS, CachedClip, ClipDataset, PreparedSet, fingerprint
from models.device import autocast, resolve_device
from models.files import atomic_write
from models.teacher_expression import label_correction_loss, relabel

logger = logging.getLogger(__name__)

LR, MOMENTUM, WEIGHT_DECAY = 1e-3, 0.9, 1e-4
STEP_SIZE, STEP_GAMMA = 7, 0.5
COSINE_T0, COSINE_TMULT = 10, 2
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainResult:
    """A trained model and what it was trained and measured on."""

    model: nn.Module
    model_name: str
    variant: str
    classes: tuple[str, ...]
    task: str | None
    licence: str
    data_fingerprint: str
    metrics: dict
    history: list[dict] = field(default_factory=list)
    out_dir: Path | None = None


def model_view(model_name: str) -> str:
    model_module(model_name)  # unknown names: ValueError listing the valid ones
    return MODEL_VIEWS[model_name]


def clip_dataset(
    clips: Sequence[CachedClip],
    model: nn.Module,
    view: str,
    *,
    per_segment: int,
    train: bool,
    augment: bool = True,
    seed: int = 0,
) -> ClipDataset:
    """The clips as input of ``model``: U = num_frames / per_segment segments, its image size and mean / std."""
    cfg = model.config
    if per_segment < 1 or cfg.num_frames % per_segment:
        raise ValueError(f"per_segment={per_segment} must divide the model's num_frames={cfg.num_frames}")
    return ClipDataset(
        clips,
        view=view,
        segments=cfg.num_frames // per_segment,
        per_segment=per_segment,
        image_size=cfg.image_size,
        mean=cfg.mean,
        std=cfg.std,
        train=train,
        augment=augment,
        seed=seed,
    )


def forward(model: nn.Module, model_name: str, x: Tensor, points: Tensor) -> Tensor:
    """Logits of a batch: x (B, T, C, H, W), points (B, T, K, 2) landmarks or keypoints in x's pixels."""
    if model_name == "learner_state":
        return model(x)
    return model(x, points)


# ------------------------------------------------------------------------------------------ metrics


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict:
    """WAR, UAR, recall and support per class, confusion matrix (rows true, columns predicted).

    UAR averages the recall of the classes with at least one true clip; a class without clips has recall
    None. An empty evaluation is a ValueError.
    """
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if y_true.size == 0:
        raise ValueError("no clips to evaluate")
    k = len(classes)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (y_true, y_pred), 1)
    support = confusion.sum(axis=1)
    recall = [float(confusion[i, i] / support[i]) if support[i] else None for i in range(k)]
    present = [r for r in recall if r is not None]
    return {
        "n": int(y_true.size),
        "war": float(np.trace(confusion) / y_true.size),
        "uar": float(np.mean(present)),
        "classes": list(classes),
        "recall": dict(zip(classes, recall, strict=True)),
        "support": {c: int(s) for c, s in zip(classes, support, strict=True)},
        "confusion": confusion.tolist(),
    }


def save_metrics(metrics: dict, folder: str | os.PathLike) -> None:
    """``metrics.json``, ``confusion.csv`` and ``confusion.png`` (from ``metrics["confusion"]``) in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    classes, confusion = metrics["classes"], np.array(metrics["confusion"])
    table = pd.DataFrame(confusion, index=pd.Index(classes, name="true"), columns=classes)
    table.to_csv(folder / "confusion.csv")
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(classes), 1.0 + 0.6 * len(classes)))
    ax.imshow(confusion, cmap="Blues")
    for (i, j), count in np.ndenumerate(confusion):
        ax.text(j, i, str(count), ha="center", va="center", color="black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"WAR {metrics['war']:.3f}  UAR {metrics['uar']:.3f}  (n = {metrics['n']})")
    fig.tight_layout()
    fig.savefig(folder / "confusion.png", dpi=100)
    plt.close(fig)


@torch.no_grad()
def predict(model: nn.Module, model_name: str, data: ClipDataset, device: torch.device, batch_size: int = 8):
    """(true labels, predicted logit indices) of every clip of ``data``, in order."""
    model.eval()
    truth, predicted = [], []
    for x, points, labels, _ in DataLoader(data, batch_size=batch_size, shuffle=False):
        with autocast(device):
            logits = forward(model, model_name, x.to(device), points.to(device))
        predicted.append(logits.float().argmax(dim=1).cpu())
        truth.append(labels)
    return torch.cat(truth).numpy(), torch.cat(predicted).numpy()


def evaluate(
    model: nn.Module,
    model_name: str,
    clips: Sequence[CachedClip],
    classes: Sequence[str],
    *,
    device: torch.device,
    per_segment: int = 1,
    batch_size: int = 8,
) -> dict:
    """:func:`classification_metrics` of ``model`` on cached ``clips`` (labels index ``classes``, the logits)."""
    data = clip_dataset(clips, model, model_view(model_name), per_segment=per_segment, train=False)
    truth, predicted = predict(model, model_name, data, device, batch_size)
    return classification_metrics(truth, predicted, classes)


# ----------------------------------------------------------------------------------------- training


def _scheduler(optimizer: torch.optim.Optimizer, balanced: bool):
    if balanced:
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=COSINE_T0, T_mult=COSINE_TMULT)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=STEP_SIZE, gamma=STEP_GAMMA)


def _loader(data: ClipDataset, labels: Tensor, batch_size: int, balanced: bool, seed: int, epoch: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    if balanced:
        counts = torch.bincount(labels).float()
        sampler = WeightedRandomSampler(1.0 / counts[labels], len(labels), replacement=True, generator=generator)
        return DataLoader(data, batch_size=batch_size, sampler=sampler)
    return DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator)


def train_epoch(
    model: nn.Module,
    model_name: str,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    labels: Tensor,
    *,
    device: torch.device,
    relabelling: bool,
) -> dict:
    """One pass over ``loader``; ``labels`` (current label per clip index) is updated in place by re-labelling.

    Returns loss (mean over batches), accuracy against the labels trained on, steps and labels changed.
    """
    model.train()
    cfg = model.config
    corrected = model_name == "teacher_expression" and cfg.label_correction
    losses, correct, seen, changed = [], 0, 0, 0
    for x, points, _, index in loader:
        x, points, y = x.to(device), points.to(device), labels[index].to(device)
        with autocast(device):
            if corrected:
                logits, weights = model.forward_with_weights(x, points)
                loss = label_correction_loss(
                    logits.float(), y, weights.float(), eta=cfg.eta, margin=cfg.weight_margin, gamma=cfg.gamma
                )
            else:
                logits = forward(model, model_name, x, points)
                loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        correct += int((logits.detach().argmax(dim=1) == y).sum())
        seen += len(y)
        if corrected and relabelling:
            new = relabel(logits.detach().float(), y, weights.detach().float(), eta=cfg.eta,
                                threshold=cfg.relabel_threshold).cpu()  # fmt: skip
            changed += int((new != labels[index]).sum())
            labels[index] = new
    return {"loss": float(np.mean(losses)), "accuracy": correct / max(seen, 1), "steps": len(losses),
            "relabelled": changed}  # fmt: skip


def train(
    prepared: PreparedSet,
    model_name: str,
    variant: str = "paper",
    *,
    epochs: int,
    device: str = "auto",
    out_dir: str | os.PathLike,
    overrides: dict | None = None,
    batch_size: int = 8,
    per_segment: int = 1,
    lr: float = LR,
    relabel_from: int = 10,
    augment: bool = True,
    seed: int = 0,
    resume: bool = False,
    log: logging.Logger | logging.LoggerAdapter | None = None,
) -> TrainResult:
    """Train ``model_name`` ``variant`` on the prepared train split for ``epochs`` epochs (see module docstring).

    Args:
        prepared: the dataset's clips prepared for the model's view (:func:`model_view`).
        epochs: total epochs; with ``resume`` the run continues from the checkpoint's epoch up to this.
        device: auto, cpu or cuda.
        out_dir: checkpoint, metrics.json, confusion.csv / .png.
        overrides: config fields replaced in the variant (e.g. tiny widths); ``num_classes`` is set from
            the dataset's classes.
        per_segment: V frames per segment; U = num_frames / V.
        relabel_from: first epoch (1-based) in which teacher_expression re-labels (paper 1 gives none).
        augment: paper 2's clip augmentation in training (False: random frame sampling only).
        resume: continue from ``<out_dir>/checkpoint.pt``; its model, variant, config and data must match.

    Returns the model after the last epoch and its metrics on the test split (else the validation split).
    """
    log = log or logger
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    torch_device = resolve_device(device)
    view = model_view(model_name)
    if prepared.view != view:
        raise ValueError(f"{model_name} takes the {view!r} view; the clips were prepared for {prepared.view!r}")
    dataset = prepared.dataset
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    overrides = {**(overrides or {}), "num_classes": len(dataset.classes)}
    torch.manual_seed(seed)
    model = build_model(model_name, variant, **overrides).to(torch_device)
    cached = {split: prepared.split(split) for split in SPLITS}
    data_fingerprint = prepared.fingerprint()
    train_data = clip_dataset(
        cached["train"], model, view, per_segment=per_segment, train=True, augment=augment, seed=seed
    )
    if not len(train_data):
        raise ValueError(f"{dataset.name}: no usable training clips (dropped: {_drops(cached['train'])})")
    watch = "validation" if any(c.path for c in cached["validation"]) else "test"
    balanced = dataset.name == "daisee"
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    scheduler = _scheduler(optimizer, balanced)
    labels = train_data.labels.clone()
    start, step, history = 1, 0, []
    checkpoint = out / CHECKPOINT
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        _check_resumable(state, model_name, variant, model, data_fingerprint, checkpoint)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        labels, start, step, history = state["labels"], state["epoch"] + 1, state["step"], state["history"]
        log.info("resuming %s from epoch %d of %s (step %d)", model_name, state["epoch"], checkpoint, step)
    elif resume:
        log.info("no checkpoint at %s: training from scratch", checkpoint)
    log.info(
        "training %s/%s on %s: %d clips (%s), watching %s, %d epochs on %s",
        model_name, variant, dataset.name, len(train_data), dict(Counter(labels.tolist())), watch, epochs,
        torch_device,
    )  # fmt: skip
    for epoch in range(start, epochs + 1):
        began = time.perf_counter()
        torch.manual_seed(seed * 100_003 + epoch)
        train_data.epoch = epoch
        loader = _loader(train_data, labels, batch_size, balanced, seed, epoch)
        lr_now = optimizer.param_groups[0]["lr"]
        stats = train_epoch(model, model_name, loader, optimizer, labels, device=torch_device,
                            relabelling=epoch >= relabel_from)  # fmt: skip
        scheduler.step()
        step += stats["steps"]
        record = {"epoch": epoch, "lr": lr_now, **stats}
        if any(c.path for c in cached[watch]):
            found = evaluate(model, model_name, cached[watch], dataset.classes, device=torch_device,
                             per_segment=per_segment, batch_size=batch_size)  # fmt: skip
            record.update({f"{watch}_war": found["war"], f"{watch}_uar": found["uar"]})
        record["seconds"] = round(time.perf_counter() - began, 2)
        history.append(record)
        log.info(
            "epoch %d/%d: loss %.4f, accuracy %.3f%s, lr %.2e, %.1f s",
            epoch, epochs, stats["loss"], stats["accuracy"],
            "".join(f", {k} {v:.3f}" for k, v in record.items() if k.startswith(watch)), lr_now, record["seconds"],
        )  # fmt: skip
        state = {
            "model": model_name,
            "variant": variant,
            "config": asdict(model.config),
            "classes": list(dataset.classes),
            "task": dataset.task,
            "licence": dataset.licence,
            "data_fingerprint": data_fingerprint,
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "step": step,
            "labels": labels,
            "history": history,
        }
        atomic_write(checkpoint, partial(torch.save, state))
    final = "test" if any(c.path for c in cached["test"]) else watch
    metrics: dict = {"epochs": epochs, "steps": step, "history": history, "extraction": dict(prepared.params),
                     "per_segment": per_segment, "dataset": dataset.name}  # fmt: skip
    if any(c.path for c in cached[final]):
        found = evaluate(model, model_name, cached[final], dataset.classes, device=torch_device,
                         per_segment=per_segment, batch_size=batch_size)  # fmt: skip
        metrics.update({"split": final, **found})
        save_metrics(metrics, out)
        log.info("%s: WAR %.3f, UAR %.3f on %d clips; %s", final, found["war"], found["uar"], found["n"], out)
    else:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return TrainResult(
        model=model.cpu().eval(),
        model_name=model_name,
        variant=variant,
        classes=tuple(dataset.classes),
        task=dataset.task,
        licence=dataset.licence,
        data_fingerprint=data_fingerprint,
        metrics=metrics,
        history=history,
        out_dir=out,
    )


def _drops(clips: Sequence[CachedClip]) -> dict[str, int]:
    return dict(Counter(c.reason for c in clips if c.reason))


def _check_resumable(state: dict, model_name: str, variant: str, model: nn.Module, data: str, path: Path) -> None:
    mine = {"model": model_name, "variant": variant, "config": asdict(model.config), "data_fingerprint": data}
    theirs = {k: state[k] for k in mine}
    theirs["config"] = asdict(type(model.config)(**state["config"]))
    differ = [k for k in mine if mine[k] != theirs[k]]
    if differ:
        raise ValueError(f"cannot resume from {path}: its {', '.join(differ)} differ from this run's")


# ------------------------------------------------------------------------------------- registry use


def register_result(store_root: str | os.PathLike, result: TrainResult) -> str:
    """Register a trained model (``models.registry.register``) with its metrics; returns the version."""
    from models.registry import register

    if result.task is None:
        raise ValueError(
            f"classes {list(result.classes)} are not those of a registry task (emotion, learner_state, gesture): "
            "the model cannot be registered"
        )
    return register(
        store_root,
        result.model_name,
        result.model,
        variant=result.variant,
        metrics=result.metrics,
        data_fingerprint=result.data_fingerprint,
        task=result.task,
        classes=result.classes,
        licence=result.licence,
    )


def register_checkpoint(
    store_root: str | os.PathLike, folder: str | os.PathLike, task: str | None = None, licence: str | None = None
) -> tuple[str, str]:
    """Register the last epoch of the training run in ``folder`` (its ``checkpoint.pt`` and ``metrics.json``);
    task and licence come from the run (its dataset) unless given. Returns (model name, version)."""
    from models.registry import register

    folder = Path(folder)
    if not (folder / CHECKPOINT).is_file():
        raise FileNotFoundError(f"no {CHECKPOINT} in {folder} (the --out folder of lessonlens train)")
    state = torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=True)
    metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    model = build_model(state["model"], state["variant"], **state["config"])
    model.load_state_dict(state["state_dict"])
    version = register(
        store_root, state["model"], model, variant=state["variant"], metrics=metrics,
        data_fingerprint=state["data_fingerprint"], task=task or state["task"], classes=state["classes"],
        licence=licence or state["licence"],
    )  # fmt: skip
    return state["model"], version


def registered_extraction(store_root: str | os.PathLike, name: str, version: str) -> dict:
    """The extraction parameters registered ``name`` ``version`` was trained with: prepare clips with these to
    evaluate it ({} when the version records none: the defaults). ValueError listing the versions when unknown.
    """
    return dict(_registered_record(store_root, name, version)["metrics"].get("extraction", {}))


def _registered_record(store_root: str | os.PathLike, name: str, version: str) -> dict:
    from models.registry import list_versions

    records = list_versions(store_root, name)
    record = next((r for r in records if r["version"] == version), None)
    if record is None:
        known = ", ".join(r["version"] for r in records) or "none"
        raise ValueError(f"model {name} has no version {version!r} in {store_root}; registered versions: {known}")
    return record


def evaluate_registered(
    store_root: str | os.PathLike,
    name: str,
    version: str,
    prepared: PreparedSet,
    *,
    split: str = "test",
    device: str = "auto",
    out_dir: str | os.PathLike | None = None,
    batch_size: int = 8,
) -> dict:
    """Metrics of registered ``name`` ``version`` on the prepared ``split``, sampled as in training.

    ``prepared`` must be prepared for the model's view with the parameters of :func:`registered_extraction`
    (ValueError otherwise). The dataset's class names are matched to the model's (any order); a class the
    model lacks is a ValueError. With ``out_dir`` the metrics, confusion.csv and confusion.png are written there.
    """
    from models.registry import load_model

    record = _registered_record(store_root, name, version)
    model = load_model(store_root, name, version)
    dataset = prepared.dataset
    model_classes = list(record["classes"])
    missing = [c for c in dataset.classes if c not in model_classes]
    if missing:
        raise ValueError(
            f"{name} {version} predicts {model_classes}; the dataset's classes {missing} are not among them"
        )
    expected = record["metrics"].get("extraction", {})
    differ = sorted(k for k, v in expected.items() if prepared.params.get(k) != v)
    if prepared.view != model_view(name) or differ:
        raise ValueError(
            f"{name} {version} was trained on the {model_view(name)!r} view extracted with {expected}; the clips "
            f"were prepared for {prepared.view!r} with {dict(prepared.params)} (differing: {differ})"
        )
    per_segment = int(record["metrics"].get("per_segment", 1))
    to_model = [model_classes.index(c) for c in dataset.classes]
    cached = [replace(c, clip=replace(c.clip, label=to_model[c.clip.label])) for c in prepared.split(split)]
    torch_device = resolve_device(device)
    metrics = evaluate(model.to(torch_device), name, cached, model_classes, device=torch_device,
                       per_segment=per_segment, batch_size=batch_size)  # fmt: skip
    metrics.update({"model": name, "version": version, "dataset": dataset.name, "split": split,
                    "data_fingerprint": fingerprint(cached, model_classes, prepared.params)})  # fmt: skip
    if out_dir is not None:
        save_metrics(metrics, out_dir)
    return metrics
