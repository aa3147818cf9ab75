"""The contract every model keeps, for each of its variants (tiny widths from ``tests.tiny``): a batch in the
repository's video layout gives one finite logit per class, and one backward pass gives every parameter a
finite gradient, non-zero except where :data:`MAY_BE_ZERO` says why. Model-specific behaviour (equations,
shapes inside) is tested in each model's file.
"""

import pytest
import torch
import torch.nn.functional as F

from models import available_models, available_variants, build_model
from models.info import example_inputs
from tests.tiny import TINY

# Parameters whose gradient may be exactly zero at initialisation: teacher_expression's temporal-attention score
# (eq 3) is the ReLU of one unit (channels // 16 is 1 at tiny widths), dead for a whole batch at some seeds.
MAY_BE_ZERO = {"teacher_expression": ("temporal_attention.q1.", "temporal_attention.q2.")}
CASES = [(name, variant) for name in available_models() for variant in available_variants(name)]


def test_every_model_has_a_tiny_config():
    assert sorted(TINY) == available_models()


@pytest.mark.parametrize("name, variant", CASES, ids=[f"{n}-{v}" for n, v in CASES])
def test_forward_and_backward(name, variant):
    torch.manual_seed(0)
    model = build_model(name, variant, **TINY[name]).train()
    config = model.config
    # a batch of two clips: x (2, T, C, H, W) and the model's point inputs (2, T, K, 2), if any
    inputs = [torch.cat(pair) for pair in zip(example_inputs(name, config), example_inputs(name, config), strict=True)]
    if getattr(config, "label_correction", False):  # the sample-weight branch trains too
        logits, *extra = model.forward_with_weights(*inputs)
    else:
        logits, extra = model(*inputs), []
    assert logits.shape == (2, config.num_classes)
    assert torch.isfinite(logits).all()
    loss = F.cross_entropy(logits, torch.tensor([0, config.num_classes - 1])) + sum(e.sum() for e in extra)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, no_grad
    zero_grad = [
        n
        for n, p in model.named_parameters()
        if not p.grad.abs().sum() > 0 and not n.startswith(MAY_BE_ZERO.get(name, ()))
    ]
    assert not zero_grad, zero_grad
