"""Size, cost and speed of every model variant: parameters, GFLOPs per clip, CPU latency per clip.

Conventions
-----------
- ``params``: ``sum(p.numel() for p in model.parameters())`` (buffers such as BN running statistics are
  not counted, as in the papers).
- ``gflops``: multiply-accumulates per clip, in units of 1e9 (one multiply-add = one "FLOP"), as the
  papers report them (AGDTNet's "5.98 GFLOPs", Table 6) and as thop/fvcore count. It is measured with
  ``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per multiply-add, so its total is
  halved here. Only matrix products and convolutions are counted (elementwise operations, norms and
  pooling are not), which is also the papers' convention.
- ``latency_ms``: median wall time of ``runs`` forward passes (after one warm-up pass) on this machine's
  CPU under ``torch.inference_mode()``, batch size 1, the model in eval mode, at the torch default
  thread count; ``None`` when ``latency=False``.
- ``input``: the shapes fed to ``forward`` (batch 1), e.g. ``1x16x3x112x112``; models with several
  inputs (landmarks, keypoints) list them joined by `` + ``.

Inputs come from the model module's ``example_inputs(config, batch_size=1) -> tuple[Tensor, ...]`` when
it defines one; otherwise one clip ``(1, num_frames, in_channels, image_size, image_size)`` is built from
the config's fields of those names. A model whose module does not exist yet is skipped with a warning.
The pretrained nets read from registry packages (:data:`PRETRAINED`, variant ``pretrained``) take one face
image, so their "clip" is one face.
"""

import inspect
import statistics
import time
import warnings
from dataclasses import fields, replace
from importlib import import_module

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from models import _MODULES, available_models, available_variants, model_module

COLUMNS = ("model", "variant", "params", "gflops", "input", "latency_ms")


# extra forward arguments the fallback knows how to fake: name -> module constant with the point count
_POINT_INPUTS = {"landmarks": ("NUM_LANDMARKS", 68), "keypoints": ("NUM_KEYPOINTS", 33)}


def example_inputs(name: str, config) -> tuple[Tensor, ...]:
    """The inputs of one forward pass, batch size 1, for model ``name`` built with ``config``.

    Uses the module's ``example_inputs(config, batch_size)`` when it has one. Otherwise: a clip
    ``(1, num_frames, in_channels, image_size, image_size)`` from the config, plus, for each further
    argument of ``Model.forward`` named ``landmarks`` or ``keypoints``, points ``(1, num_frames, K, 2)`` in
    input-pixel (x, y), uniform over the central 60 % of the frame (K from the module's ``NUM_LANDMARKS``
    / ``NUM_KEYPOINTS``). Convolution and matrix costs do not depend on where the points are.
    """
    module = model_module(name)
    if hasattr(module, "example_inputs"):
        return tuple(module.example_inputs(config, batch_size=1))
    names = {f.name for f in fields(config)}
    needed = {"num_frames", "image_size"}
    if not needed <= names:
        raise ValueError(
            f"{name}: module defines no example_inputs(config, batch_size) and its Config lacks "
            f"{sorted(needed - names)}; cannot build an input"
        )
    T, size = config.num_frames, config.image_size
    inputs = [torch.randn(1, T, getattr(config, "in_channels", 3), size, size)]
    generator = torch.Generator().manual_seed(0)
    for arg in list(inspect.signature(module.Model.forward).parameters)[2:]:
        if arg not in _POINT_INPUTS:
            raise ValueError(
                f"{name}: Model.forward takes {arg!r}, which info cannot fake; define "
                "example_inputs(config, batch_size) in the model module"
            )
        constant, default = _POINT_INPUTS[arg]
        points = getattr(module, constant, default)
        inputs.append(size * (0.2 + 0.6 * torch.rand(1, T, points, 2, generator=generator)))
    return tuple(inputs)


def count_gflops(model: nn.Module, inputs: tuple[Tensor, ...]) -> float:
    """Multiply-accumulates of one ``model(*inputs)`` call, in units of 1e9 (FlopCounterMode total / 2)."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() / 2 / 1e9


def measure_latency_ms(model: nn.Module, inputs: tuple[Tensor, ...], runs: int = 5) -> float:
    """Median wall time in milliseconds of ``runs`` calls of ``model(*inputs)`` after one warm-up call."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    times = []
    with torch.inference_mode():
        model(*inputs)
        for _ in range(runs):
            start = time.perf_counter()
            model(*inputs)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _build(module, config, device: str) -> nn.Module:
    with torch.device(device):
        return module.Model(config).eval()


def measure(name: str, variant: str = "paper", *, latency: bool = True, runs: int = 5, **overrides) -> dict:
    """One info row for model ``name`` in configuration ``variant``; ``overrides`` replace config fields.

    Parameters and FLOPs are counted on a copy built on the ``meta`` device (no memory, no arithmetic;
    the same counts as a real forward), falling back to a real forward if the model cannot run on meta.
    Latency needs, and only then builds, the real model.
    """
    module = model_module(name)
    if variant not in module.VARIANTS:
        raise ValueError(f"unknown variant {variant!r} of {name}; valid variants: {', '.join(module.VARIANTS)}")
    config = replace(module.VARIANTS[variant], **overrides)
    return _row(name, variant, lambda device: _build(module, config, device), example_inputs(name, config),
                latency, runs)  # fmt: skip


# pretrained nets read from weights shipped in registry packages (not trained here, so not in the factory):
# name -> (module, net class, config class); the module defines ``example_inputs(config, batch_size)``
PRETRAINED = {
    "face_expression": ("models.faceapi", "FaceExpressionNet", "Config"),
    "face_recognition": ("models.face_recognition", "FaceRecognitionNet", "RecognitionConfig"),
}
PRETRAINED_VARIANT = "pretrained"


def measure_pretrained(name: str, *, latency: bool = True, runs: int = 5) -> dict:
    """The info row of pretrained net ``name`` (:data:`PRETRAINED`), built with random weights: size, cost and
    speed do not depend on the weights, so no weight file is needed."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained net {name!r}; valid: {', '.join(PRETRAINED)}")
    module_name, cls, config_cls = PRETRAINED[name]
    module = import_module(module_name)
    config = getattr(module, config_cls)()

    def build(device: str) -> nn.Module:
        with torch.device(device):
            return getattr(module, cls)(config).eval()

    return _row(name, PRETRAINED_VARIANT, build, tuple(module.example_inputs(config, batch_size=1)), latency, runs)


def _row(name: str, variant: str, build, inputs: tuple[Tensor, ...], latency: bool, runs: int) -> dict:
    model = build("meta")
    try:
        gflops = count_gflops(model, tuple(t.to("meta") for t in inputs))
    except (NotImplementedError, RuntimeError):  # an operation without a meta kernel, or data-dependent
        model = build("cpu")
        gflops = count_gflops(model, inputs)
    return {
        "model": name,
        "variant": variant,
        "params": sum(p.numel() for p in model.parameters()),
        "gflops": gflops,
        "input": " + ".join("x".join(str(d) for d in t.shape) for t in inputs),
        "latency_ms": measure_latency_ms(build("cpu"), inputs, runs) if latency else None,
    }


def collect(models: list[str] | None = None, latency: bool = True) -> list[dict]:
    """Info rows (keys ``COLUMNS``) for every variant of every model in ``models`` (default: all, then the
    pretrained nets of :data:`PRETRAINED`; a pretrained net's name may be listed too).

    Models whose module is not written yet are skipped with a ``UserWarning``; unknown names raise
    ``ValueError`` listing the valid ones.
    """
    rows = []
    for name in models if models is not None else [*available_models(), *PRETRAINED]:
        if name in PRETRAINED:
            rows.append(measure_pretrained(name, latency=latency))
            continue
        try:
            variants = available_variants(name)
        except ModuleNotFoundError as err:
            if err.name != _MODULES[name]:
                raise  # the module exists but one of its imports is missing: a real error
            warnings.warn(f"skipping model {name!r}: module {err.name} does not exist yet", stacklevel=2)
            continue
        rows.extend(measure(name, variant, latency=latency) for variant in variants)
    return rows


def format_table(rows: list[dict]) -> str:
    """A plain-text table of ``rows`` with a footnote stating the units and conventions."""
    header = ("model", "variant", "params (M)", "GFLOPs", "input", "latency (ms)")
    body = [
        (
            str(r["model"]),
            str(r["variant"]),
            f"{r['params'] / 1e6:.2f}",
            f"{r['gflops']:.2f}",
            str(r["input"]),
            "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    numeric = {2, 3, 5}

    def line(cells) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(header), "  ".join("-" * w for w in widths), *(line(b) for b in body)]
    out.append(
        "GFLOPs: multiply-accumulates per clip / 1e9 (the papers' convention; 2x for strict FLOPs). "
        f"Latency: CPU, batch 1, median, torch threads = {torch.get_num_threads()}."
    )
    return "\n".join(out)
