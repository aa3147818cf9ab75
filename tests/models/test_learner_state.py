import io
from dataclasses import asdict, replace

import pytest
import torch

from models import build_model
from models.learner_state import (
    ACA,
    VARIANTS,
    Config,
    DifferentialEnhancement,
    Model,
    cross_statistics,
    gated_fusion,
    temporal_differences,
)
from tests.tiny import TINY_AGDTNET

TINY = TINY_AGDTNET


def tiny(variant: str = "paper", **overrides) -> Model:
    return Model(replace(VARIANTS[variant], **{**TINY, **overrides}))


def test_variants_are_the_rows_of_table_2():
    rows = {v: (c.attention, c.temporal, c.aga_gate) for v, c in VARIANTS.items()}
    assert rows == {
        "paper": ("aga", "dtformer", True),
        "tformer": ("none", "tformer", True),
        "dtformer": ("none", "dtformer", True),
        "cbam_dtformer": ("cbam", "dtformer", True),
        "se_dtformer": ("se", "dtformer", True),
        "aga_tformer": ("aga", "tformer", True),
        "aga_dtformer_nogate": ("aga", "dtformer", False),
    }
    assert VARIANTS["paper"] == Config()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_feature_and_head_split(variant):
    torch.manual_seed(0)
    model = tiny(variant, num_classes=3)
    features = model.forward_features(torch.randn(2, 4, 3, 32, 32))
    assert features.shape == (2, 5, 64)  # class token + T frame tokens
    assert model.forward_head(features, pre_logits=True).shape == (2, 64)
    assert model.forward_head(features).shape == (2, 3)


def test_variant_structure():
    assert tiny("tformer").temporal.enhance is None
    assert tiny("dtformer").temporal.enhance is not None
    assert tiny("dtformer").backbone.stage_attention.keys() == set()
    assert sorted(tiny("paper").backbone.stage_attention.keys()) == ["2", "3"]
    assert tiny("aga_dtformer_nogate").backbone.stage_attention["2"].aca.gate is None
    enhance = tiny("paper").temporal.enhance
    assert enhance.alpha_f.item() == 0.5 and enhance.alpha_b.item() == 0.5


def test_paper_model_size():
    # Paper §4.5.4: 19.10 M parameters; this reading of the unstated widths gives 19.22 M (header).
    model = build_model("learner_state")
    params = sum(p.numel() for p in model.parameters())
    assert params == pytest.approx(19.10e6, rel=0.05)
    assert params == 19_217_443


def test_temporal_differences_hand_computed():
    # X' over T = 4 frames, one channel: [1, 2, 4, 7].
    # Δf_t = X_{t+1} - X_t for t = 1..3 and 0 at t = 4:  [2-1, 4-2, 7-4, 0] = [1, 2, 3, 0]   (eq 16)
    # Δb_t = X_t - X_{t-1} for t = 2..4 and 0 at t = 1:  [0, 2-1, 4-2, 7-4] = [0, 1, 2, 3]   (eq 17)
    # Δ = 0.5 Δf + 0.5 Δb = [0.5, 1.5, 2.5, 1.5]                                            (eq 18)
    x = torch.tensor([1.0, 2.0, 4.0, 7.0]).view(1, 4, 1)
    delta_f, delta_b = temporal_differences(x, shift=1)
    assert delta_f.flatten().tolist() == [1.0, 2.0, 3.0, 0.0]
    assert delta_b.flatten().tolist() == [0.0, 1.0, 2.0, 3.0]
    # s = 2: Δf = [4-1, 7-2, 0, 0] = [3, 5, 0, 0]; Δb = [0, 0, 4-1, 7-2] = [0, 0, 3, 5]
    delta_f, delta_b = temporal_differences(x, shift=2)
    assert delta_f.flatten().tolist() == [3.0, 5.0, 0.0, 0.0]
    assert delta_b.flatten().tolist() == [0.0, 0.0, 3.0, 5.0]

    # Eqs 18-21 with α_f = α_b = 0.5 and the depthwise kernel set to the identity [0, 1, 0], bias 0:
    # G = σ(Δ) = [σ(0.5), σ(1.5), σ(2.5), σ(1.5)] = [0.6224593, 0.8175745, 0.9241418, 0.8175745]
    # X' + G ⊙ Δ = [1 + 0.5·0.6224593, 2 + 1.5·0.8175745, 4 + 2.5·0.9241418, 7 + 1.5·0.8175745]
    #            = [1.3112297, 3.2263618, 6.3103545, 8.2263618]
    module = DifferentialEnhancement(dim=1, shift=1, kernel_size=3)
    with torch.no_grad():
        module.dwconv.weight.copy_(torch.tensor([0.0, 1.0, 0.0]).view(1, 1, 3))
        module.dwconv.bias.zero_()
    out = module(x).flatten()
    assert torch.allclose(out, torch.tensor([1.3112297, 3.2263618, 6.3103545, 8.2263618]), atol=1e-6)


def test_aca_gated_fusion_hand_computed():
    # l1 = [1, 2], l2 = [3, 1]
    # A = l1 l2ᵀ = [[3, 1], [6, 2]]  -> a = row means = [2, 4]                              (eq 3)
    # B = l2 l1ᵀ = [[3, 6], [1, 2]]  -> b = row means = [4.5, 1.5]                          (eq 4)
    # w = [0.25, 0.5]: f_att = w·a + (1 - w)·b = [0.25·2 + 0.75·4.5, 0.5·4 + 0.5·1.5]
    #                                          = [0.5 + 3.375, 2 + 0.75] = [3.875, 2.75]   (eq 6)
    # without the gate (w = 0.5): [0.5·2 + 0.5·4.5, 0.5·4 + 0.5·1.5] = [3.25, 2.75]
    a, b = cross_statistics(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 1.0]]))
    assert a.tolist() == [[2.0, 4.0]] and b.tolist() == [[4.5, 1.5]]
    assert gated_fusion(a, b, torch.tensor([[0.25, 0.5]])).tolist() == [[3.875, 2.75]]
    assert gated_fusion(a, b, 0.5).tolist() == [[3.25, 2.75]]
    assert ACA(channels=2, gate=False).fusion_weight(a, b) == 0.5
    w = ACA(channels=2, gate=True).fusion_weight(a, b)
    assert w.shape == (1, 2) and ((w > 0) & (w < 1)).all()


def test_config_round_trip_through_checkpoint():
    torch.manual_seed(0)
    model = tiny("aga_dtformer_nogate").eval()
    buffer = io.BytesIO()
    torch.save({"config": asdict(model.config), "model": model.state_dict()}, buffer)
    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=True)
    restored = Model(Config(**ckpt["config"])).eval()
    restored.load_state_dict(ckpt["model"])
    assert restored.config == model.config
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(restored(x), model(x))
    # lists (as from JSON) come back as tuples
    assert Config(**{**asdict(model.config), "widths": [8, 16, 32, 64]}).widths == (8, 16, 32, 64)


def test_invalid_config_and_input_raise():
    with pytest.raises(ValueError, match="attention"):
        Config(attention="eca")
    with pytest.raises(ValueError, match="temporal"):
        Config(temporal="lstm")
    with pytest.raises(ValueError, match="heads"):
        Config(heads=7)
    with pytest.raises(ValueError, match="frames"):
        tiny()(torch.randn(1, 3, 3, 32, 32))
