"""Model registry in the store: versioned checkpoints, their provenance, and one promoted version per task.

Layout::

    <store>/models/<name>/<version>/model.pt         state_dict (torch.save), loaded with weights_only=True
    <store>/models/<name>/<version>/config.json      {"model", "variant", "config", "task", "classes", "licence"}
    <store>/models/<name>/<version>/metrics.json     evaluation metrics given at registration
    <store>/models/<name>/<version>/provenance.json  {"data_fingerprint", "code_version", "registered_at"}
    <store>/models/promoted/<task>.json              {"task", "name", "version", "promoted_at"}

``<name>`` is a model of ``models.build_model`` (``learner_state``, ``teacher_expression``, ...) and
``<version>`` is ``v0001``, ``v0002``, ... per name, in registration order. A version folder is written
under a temporary name and renamed into place, so it is complete or absent; two concurrent registrations
get different numbers (the loser of a rename race takes the next one). ``config`` round-trips:
``Model(Config(**config))`` rebuilds the architecture that ``model.pt`` fits. ``classes`` names the
model's outputs in logit order; they must be the classes of ``task`` (:data:`TASK_CLASSES`), in any order.

Promotion rewrites the task's pointer file atomically and then emits the Prefect event
``lessonlens.model.registered`` (what the ``reprocess-after-retraining`` deployment triggers on). The
pointer is the record; the event is a notification and is only sent when a Prefect API is configured:
measured with prefect 3.8.8, ``emit_event`` without ``PREFECT_API_URL`` starts a temporary API server
(16 s here) that stops again with the process, so nothing could ever react to the event.

Licences: ``licence`` is free text recorded with the version; one that starts with ``research-only``
(e.g. weights trained on DFEW or DAiSEE, whose licences forbid commercial use) is logged as a warning
every time the weights are loaded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from models import available_models, model_module
from models.files import atomic_write
from models.rules import BODY_TASKS, RULE_STREAMS, TASK_CLASSES, check_task

if TYPE_CHECKING:  # torch is imported where weights are saved or loaded: reading records needs none
    from torch import nn

logger = logging.getLogger(__name__)

RESEARCH_ONLY = "research-only"
EVENT = "lessonlens.model.registered"
_VERSION = re.compile(r"^v(\d{4,})$")
_REGISTER_ATTEMPTS = 20


def models_root(store_root: str | os.PathLike) -> Path:
    """``<store>/models``; a store on object storage (a ``UPath``, see ``tasks.store.location``) as it is."""
    if not isinstance(store_root, str | os.PathLike):
        return store_root / "models"
    return Path(store_root).expanduser().resolve() / "models"


def is_research_only(licence: str) -> bool:
    return licence.strip().lower().startswith(RESEARCH_ONLY)


def code_version() -> str:
    """The git commit of this checkout (``+dirty`` with uncommitted changes to tracked files), else the
    installed package version."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"lessonlens=={version('lessonlens')}"
        except PackageNotFoundError:
            return "unknown"
    return commit + ("+dirty" if dirty else "")


def _versions(folder: Path) -> list[str]:
    found = [p.name for p in folder.iterdir() if p.is_dir() and _VERSION.match(p.name)] if folder.is_dir() else []
    return sorted(found, key=lambda v: int(v[1:]))


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON through a temporary name and an atomic rename."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def register(
    store_root: str | os.PathLike,
    name: str,
    model: nn.Module,
    *,
    variant: str,
    metrics: dict,
    data_fingerprint: str,
    task: str,
    classes: list[str] | tuple[str, ...],
    licence: str = "unspecified",
) -> str:
    """Save ``model`` (a ``models.<name>.Model``) as the next version of ``name``; returns the version.

    Args:
        variant: the ``VARIANTS`` entry the config started from (its overrides are in the saved config).
        metrics: JSON-serialisable evaluation results, e.g. {"val_uar": 0.41}.
        data_fingerprint: identifies the training data (e.g. a hash of the training manifest).
        task: what the model predicts, a key of :data:`TASK_CLASSES`.
        classes: the class of each logit, in order; the classes of ``task`` in any order.
        licence: free text; ``research-only ...`` marks weights not to be used commercially.
    """
    module = model_module(name)
    if not isinstance(model, module.Model):
        raise TypeError(f"model must be a {module.__name__}.Model for name {name!r}, got {type(model).__name__}")
    if variant not in module.VARIANTS:
        raise ValueError(f"unknown variant {variant!r} of {name}; valid variants: {', '.join(module.VARIANTS)}")
    expected = check_task(task)
    check_inputs(name, task)
    classes = [str(c) for c in classes]
    if sorted(classes) != sorted(expected) or len(classes) != model.config.num_classes:
        raise ValueError(
            f"classes {classes} must be the {len(expected)} classes of task {task!r} {list(expected)} "
            f"(any order), one per logit of the model (num_classes={model.config.num_classes})"
        )
    config = {
        "model": name,
        "variant": variant,
        "config": asdict(model.config),
        "task": task,
        "classes": classes,
        "licence": licence,
    }
    provenance = {
        "data_fingerprint": data_fingerprint,
        "code_version": code_version(),
        "registered_at": datetime.now(UTC).isoformat(),
    }
    try:
        json.dumps(metrics)
    except TypeError as exc:
        raise TypeError(f"metrics must be JSON-serialisable: {exc}") from exc
    folder = models_root(store_root) / name
    if isinstance(folder, Path):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
    else:  # object storage: staged on local disk, then uploaded (_publish)
        tmp = Path(tempfile.mkdtemp(prefix="lessonlens-register-"))
    try:
        import torch

        torch.save(model.state_dict(), tmp / "model.pt")
        for file, data in (("config.json", config), ("metrics.json", metrics), ("provenance.json", provenance)):
            (tmp / file).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        for _ in range(_REGISTER_ATTEMPTS):
            existing = _versions(folder)
            version = f"v{int(existing[-1][1:]) + 1 if existing else 1:04d}"
            try:
                _publish(tmp, folder / version)  # fails when a concurrent registration took the number
            except OSError:
                continue
            logger.info("registered %s %s (task %s, licence %s)", name, version, task, licence)
            return version
        raise RuntimeError(f"could not allocate a version of {name} in {folder} after {_REGISTER_ATTEMPTS} tries")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(staged: Path, target) -> None:
    """Put the staged version folder at ``target``, or raise OSError when that version exists. Locally one rename;
    on object storage its ``config.json`` is created conditionally (the claim of the number), then the other
    files are uploaded, ``model.pt`` last: a version is complete once it has one (:func:`_version_dir`)."""
    if isinstance(target, Path):
        os.rename(staged, target)
        return
    files = ("config.json", "metrics.json", "provenance.json", "model.pt")
    target.fs.put_file(str(staged / files[0]), (target / files[0]).path, mode="create")
    for file in files[1:]:
        target.fs.put_file(str(staged / file), (target / file).path)


def _version_dir(store_root: str | os.PathLike, name: str, version: str) -> Path:
    """The folder of a registered version; ValueError listing the registered versions otherwise."""
    model_module(name)
    folder = models_root(store_root) / name
    if not _VERSION.match(version) or not (folder / version / "model.pt").is_file():
        known = ", ".join(_versions(folder)) or "none"
        raise ValueError(f"model {name} has no version {version!r} in {folder}; registered versions: {known}")
    return folder / version


def _record(folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text())
    return {
        "name": config["model"],
        "version": folder.name,
        **{k: config[k] for k in ("task", "classes", "variant", "licence", "config")},
        "metrics": json.loads((folder / "metrics.json").read_text()),
        **json.loads((folder / "provenance.json").read_text()),
        "path": str(folder),
    }


def list_versions(store_root: str | os.PathLike, name: str | None = None) -> list[dict]:
    """Every registered version (of ``name``, or of all models), oldest first per name.

    Each dict has name, version, task, classes, variant, licence, config, metrics, data_fingerprint,
    code_version, registered_at, path, and ``promoted`` (True for the promoted version of its task).
    """
    names = [name] if name is not None else available_models()
    if name is not None:
        model_module(name)
    root = models_root(store_root)
    pointers = [_read_pointer(p) for p in (root / "promoted").glob("*.json")]
    promoted = {(p["name"], p["version"]) for p in pointers}
    records = []
    for n in names:
        for version in _versions(root / n):
            record = _record(root / n / version)
            record["promoted"] = (n, version) in promoted
            records.append(record)
    return records


def _read_pointer(path: Path) -> dict:
    return json.loads(path.read_text())


def check_inputs(name: str, task: str) -> None:
    """ValueError unless model ``name`` reads what inference gives ``task``: body keypoints (a ``keypoints``
    argument of its ``forward``) for the body tasks (:data:`BODY_TASKS`), face crops for the others. A gesture
    model trained on emotion labels would otherwise be promoted and fail every run."""
    import inspect

    if task in RULE_STREAMS:
        raise ValueError(f"task {task!r} is the AU rules' own stream; register {name} for 'emotion' instead")
    reads_body = "keypoints" in inspect.signature(model_module(name).Model.forward).parameters
    if reads_body != (task in BODY_TASKS):
        serves = [t for t in TASK_CLASSES if (t in BODY_TASKS) == reads_body and t not in RULE_STREAMS]
        reads = "body keypoints" if reads_body else "face crops"
        raise ValueError(f"{name} reads {reads}, so it can predict {' or '.join(serves)}, not task {task!r}")


def promote(store_root: str | os.PathLike, name: str, version: str, *, notify: bool = True) -> dict:
    """Make ``version`` of ``name`` the model of its task; returns the pointer written.

    The pointer ``<store>/models/promoted/<task>.json`` is replaced atomically, then, with ``notify``, the
    Prefect event ``lessonlens.model.registered`` is emitted (only when a Prefect API is configured, see the
    module docstring; ``lessonlens evaluate`` promotes in its own store without it). An unregistered
    version is a ValueError listing the registered ones.
    """
    record = _record(_version_dir(store_root, name, version))
    check_inputs(name, record["task"])  # registered before register() checked it
    pointer = {
        "task": record["task"],
        "name": name,
        "version": version,
        "promoted_at": datetime.now(UTC).isoformat(),
    }
    _write_json(models_root(store_root) / "promoted" / f"{record['task']}.json", pointer)
    logger.info("promoted %s %s for task %s", name, version, record["task"])
    if notify:
        emit_promoted(name, version, record["task"], store_root)
    return pointer


def emit_promoted(name: str, version: str, task: str, store_root: str | os.PathLike) -> bool:
    """Emit ``lessonlens.model.registered`` for a promoted version; False when no Prefect API is configured.

    The event's resource names the model, its version, its task and the store, so that the
    ``reprocess-after-retraining`` deployment reprocesses the store the model was promoted in.

    ``PREFECT_API_URL`` is read from the environment as well as from Prefect's settings: the engine
    (``flows.engine.prefect_api``) exports the URL of its temporary API after Prefect was loaded, when
    the settings no longer see it.
    """
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if not url:
        logger.info("no Prefect API configured (PREFECT_API_URL): event %s for %s %s not emitted", EVENT,
                    name, version)  # fmt: skip
        return False
    resource = {
        "prefect.resource.id": f"lessonlens.model.{name}",
        "version": version,
        "task": task,
        "store": str(models_root(store_root).parent),
    }
    with temporary_settings(updates={PREFECT_API_URL: url}):
        return emit_event(EVENT, resource=resource) is not None


def promoted(store_root: str | os.PathLike, task: str) -> dict | None:
    """The promoted version of ``task`` (the :func:`list_versions` record plus ``promoted_at``), or None."""
    check_task(task)
    path = models_root(store_root) / "promoted" / f"{task}.json"
    if not path.is_file():
        return None
    pointer = _read_pointer(path)
    record = _record(_version_dir(store_root, pointer["name"], pointer["version"]))
    return {**record, "promoted": True, "promoted_at": pointer["promoted_at"]}


def load_model(store_root: str | os.PathLike, name: str, version: str) -> nn.Module:
    """Rebuild ``name`` ``version`` as ``Model(Config(**config))``, load its weights; eval mode, on CPU.

    Logs a warning when the version's licence is research-only.
    """
    folder = _version_dir(store_root, name, version)
    record = _record(folder)
    if is_research_only(record["licence"]):
        logger.warning(
            "loading %s %s: its weights are licensed %r - research use only, not for commercial use",
            name, version, record["licence"],
        )  # fmt: skip
    import torch

    module = model_module(name)
    model = module.Model(module.Config(**record["config"]))
    with (folder / "model.pt").open("rb") as weights:  # local, or a store on object storage
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()
