"""PyTorch models from the two papers in ``shared/papers`` and the AU-rule baseline: the ground floor.

The models, their shared blocks, the prediction tasks and rule baseline (``rules``), the registry,
datasets as torch ``Dataset`` s over already-prepared clips, training and evaluation. May import: only
third-party packages and other ``models`` modules, never ``tasks`` or ``flows``.

Video layout for the whole repository
-------------------------------------
A batch of clips is one float tensor ``x`` of shape ``(B, T, C, H, W)``: batch, time (frames of one
clip, in display order), colour channels (RGB), height, width. Pixel values are floats normalised by
the per-channel mean/std of the model's config. Every model's ``forward`` takes this layout; models
that work per frame reshape to ``(B * T, C, H, W)`` internally and say so with a shape comment.

Factory
-------
``build_model(name, variant)`` builds a model from the name table below; ``variant`` picks one of the
module's ``VARIANTS`` (the paper's setting is ``"paper"``; the ablation rows of the papers' tables
are the other entries). Unknown names raise ``ValueError`` listing the valid ones.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the model modules, not by importing this package
    from torch import nn

# model name -> module that defines ``Config``, ``Model`` and ``VARIANTS: dict[str, Config]``
_MODULES = {
    "teacher_expression": "models.teacher_expression",
    "teacher_gesture": "models.teacher_gesture",
    "learner_state": "models.learner_state",
}


def available_models() -> list[str]:
    return sorted(_MODULES)


def model_module(name: str):
    if name not in _MODULES:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(available_models())}")
    return import_module(_MODULES[name])


def available_variants(name: str) -> list[str]:
    return list(model_module(name).VARIANTS)


def build_model(name: str, variant: str = "paper", **overrides) -> nn.Module:
    """Build model ``name`` in configuration ``variant``; ``overrides`` replace config fields."""
    module = model_module(name)
    if variant not in module.VARIANTS:
        raise ValueError(f"unknown variant {variant!r} of {name}; valid variants: {', '.join(module.VARIANTS)}")
    from dataclasses import replace

    return module.Model(replace(module.VARIANTS[variant], **overrides))
