"""AGDTNet: learners' dynamic facial expressions via Adaptive Global Attention and a Differential Temporal
Transformer.

Paper: W. Liu, L. Li, C. Yan, Y. Zhang, X. Cheng, X. Zhao, M. Liu, "Dynamic Facial Expression Recognition
of Learners via Adaptive Global Attention and Differential Temporal Transformer", CAAI Transactions on
Intelligence Technology, 2026 (``shared/papers/learner-dfer-agdtnet.md``).

Implemented: §3 (Figure 1) - a ResNet18 backbone run per frame (§3.1) with AGA modules after stages 2
and 3 (§3.2): ACA, eqs 1-7, and GCA, eqs 8-13; then DTFormer (§3.3): a convolution and global average
pooling per frame, the differential temporal enhancement of eqs 14-21, a learnable temporal position
embedding (eq 22) and ``depth`` (the paper's M) pre-norm encoder layers with multi-head self-attention
and a GELU MLP (eqs 23-25); a linear classifier. ``VARIANTS`` holds the paper's model ("paper") and the
other six rows of Table 2 (TFormer vs DTFormer; no attention / SE / CBAM / AGA; AGA without the gate).

Widths the paper does not state, and how they were chosen
---------------------------------------------------------
The paper gives 19.10 M parameters and 5.98 GFLOPs per clip (§4.5.4); it never states the number of
encoder layers M, the MLP width, the kernel sizes of the ACA convolutions or of the DTFormer convolution,
nor the shape of GCA's "global convolution". The reading chosen here (``Config()``) is: DTFormer width =
ResNet18's 512 channels (C' = C / heads in eq 23), 8 heads of 64, M = 2 layers, MLP hidden 1024 (2× the
width), a 3×3 convolution for the "local context modelling" before pooling, ACA 1-D kernels of 3, and
GCA's global convolution as full-extent 1×k and k×1 convolutions (k = the stage's feature size: 14 at
stage 2, 7 at stage 3 for 112×112 input), which gives eq 12's output shape T×C×1×1 and keeps the position
information the GCA text claims. This gives 19.22 M parameters (+0.6% on 19.10 M). Reading eq 12 instead
as a small convolution over the T×C map of pooled features drops 1.38 M: 17.8 M with this DTFormer
(-6.6%), 19.9 M with an MLP of 2048.

FLOPs gap (not closable by any width choice): ``models.info`` counts multiply-accumulates (MACs, reported
as "GFLOPs" like the paper and most of this field; 2×MACs would be 16.9 G). ResNet18 alone costs 0.485
GMACs per 112×112 frame (1.814 G at 224×224, the textbook number), so 16 frames cost 7.76 GMACs before
any AGA or DTFormer operation - already 30% above the paper's 5.98 G. This model counts 8.46 G (+41%):
backbone 7.76, the DTFormer 3×3 convolution 0.60, AGA 0.03, encoder 0.07. The paper's 5.98 G is
consistent with this architecture at about 11 frames per clip (5.82 G at 11, 6.35 G at 12; the paper
never states the clip length U×V, 16 is the common DFER setting and this project's choice), or with a
backbone cut after stage 3 (stem and stages 1-3: 5.61 G); the text describes neither, so this
implementation keeps the full ResNet18 and 16 frames and reports the gap.

Departures from the paper (and readings of ambiguous text), numbered
--------------------------------------------------------------------
1. AGA modules sit after the last block of stages 2 and 3 (one per stage), not inside every block; the
   paper says only "inserted into the second and third residual stages".
2. ACA, eqs 3-5: B = l2·l1ᵀ is the transpose of A, so the literal "row-wise statistics of A, column-wise
   statistics of B" gives a == b and a gate with nothing to choose between. Here a and b are the row
   means of A and of B (equivalently the row and column means of A): a = l1·mean(l2), b = l2·mean(l1).
3. ACA, eq 5: w is computed per frame (shape (B·T, C)) by a 2→1-channel 1-D convolution (kernel
   ``gate_kernel``) over the stacked [a, b], not as the paper's R^{1×C×1×1}, which would need a rule the
   paper does not give for pooling over frames. The "w/o gate" ablation uses the fixed w = 0.5.
4. ACA: the 1-D convolution on f_avg (ECA-style, along channels, kernel ``aca_kernel``) and the fully
   connected C→C layer on f_max have no reduction or activation; the paper gives no sizes.
5. GCA, eq 12: the paper writes Conv_{1×k}(X) + Conv_{k×1}(X) ∈ R^{T×C×1×1}. Read as full-extent "global"
   convolutions: a C→C 1×k convolution with k = W followed by averaging over H, plus a C→C k×1
   convolution with k = H averaged over W. Both are computed on the pooled strips (mean over H, resp. W)
   first, which is the same result by linearity and far cheaper. k is fixed by ``image_size``; other
   input sizes are average-pooled (or repeated) to k.
6. GCA, eq 13: X^t = z_gc ⊗ GAP_t(z_gc) is written as a T×C×H×W map but built from T×C vectors; here the
   vector z_gc · GAP_t(z_gc) rescales X^s (eq 11), and the residual the text mentions is M = X + X^t.
   z_gc is computed from X (the AGA input), as eq 12 writes, not from X^s.
7. GCA's eq 10 convolution is 7×7 (CBAM's [40]) with one output channel; the paper gives no kernel.
8. DTFormer, eqs 14-17: the paper's Roll(X, +s) is the *next* frame (Δf is "the change from the
   current frame to the next"), i.e. ``torch.roll(x, -s, dim=time)``. The wrap-around differences
   outside the paper's ranges (t = T for Δf, t = 1 for Δb) are set to 0.
9. DTFormer, eq 19: a depthwise 1-D convolution (kernel 3, zero "same" padding, with bias); the paper
   calls it "depthwise separable" but then says each channel learns on its own, so no pointwise part.
   α_f and α_b are scalars.
10. DTFormer, eq 22: e_pos has T + 1 positions (t' ∈ {0..T}); position 0 is read as a learnable class
    token prepended to the T frame tokens, whose final state (after a LayerNorm) feeds the classifier.
11. Encoder layers are pre-norm for both sub-layers, Z = Z + MSA(LN(Z)), Z = Z + MLP(LN(Z)); the text
    mentions LN only before the MLP (eq 25). Eq 24's "B" is read as the attention matrix D of eq 23.
12. SE (Hu et al.) and CBAM (Woo et al. [40]) ablation modules use reduction 16 (at least 1 channel)
    and CBAM's 7×7 spatial kernel, at the same places as AGA; they have no residual (as published).
13. DTFormer's "convolution layer ... for local context modelling" is a 3×3 C→C convolution with BN and
    ReLU before the per-frame average pooling; the paper gives no kernel, normalisation or activation.
14. The classifier is LayerNorm + one linear layer on the class token; dropout (``dropout``) defaults to
    0 because the paper states none. cls token and e_pos start truncated-normal (std 0.02).
15. No pretrained weights; ImageNet mean/std in the config (the paper does not give its normalisation).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.resnet import RESNET18_LAYERS, RESNET18_WIDTHS, ResNet, stage_sizes

ATTENTIONS = ("none", "se", "cbam", "aga")
TEMPORALS = ("tformer", "dtformer")


@dataclass
class Config:
    """AGDTNet hyper-parameters; ``Config()`` is the paper's model (see the module header for choices)."""

    num_classes: int = 7
    num_frames: int = 16
    image_size: int = 112
    in_channels: int = 3
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    # backbone
    layers: tuple[int, ...] = RESNET18_LAYERS
    widths: tuple[int, ...] = RESNET18_WIDTHS
    # spatial attention after backbone stages (Table 2: none / se / cbam / aga)
    attention: str = "aga"
    attention_stages: tuple[int, ...] = (2, 3)
    aga_gate: bool = True
    aca_kernel: int = 3
    gate_kernel: int = 3
    spatial_kernel: int = 7
    reduction: int = 16
    # temporal model (Table 2: tformer / dtformer)
    temporal: str = "dtformer"
    context_kernel: int = 3
    shift: int = 1
    diff_kernel: int = 3
    depth: int = 2
    heads: int = 8
    mlp_dim: int = 1024
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("mean", "std", "layers", "widths", "attention_stages"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention {self.attention!r} is not one of {ATTENTIONS}")
        if self.temporal not in TEMPORALS:
            raise ValueError(f"temporal {self.temporal!r} is not one of {TEMPORALS}")
        if len(self.layers) != len(self.widths):
            raise ValueError(f"layers {self.layers} and widths {self.widths} differ in length")
        bad = [s for s in self.attention_stages if not 1 <= s <= len(self.widths)]
        if bad:
            raise ValueError(f"attention_stages {bad} are not stages 1..{len(self.widths)}")
        if self.widths[-1] % self.heads:
            raise ValueError(f"heads={self.heads} does not divide the width {self.widths[-1]}")
        if not 1 <= self.shift < self.num_frames:
            raise ValueError(f"shift={self.shift} must be in 1..num_frames-1={self.num_frames - 1}")
        for name in ("aca_kernel", "gate_kernel", "spatial_kernel", "context_kernel", "diff_kernel"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"{name}={getattr(self, name)} must be odd (same padding)")


# The paper's model and one entry per row of Table 2 (DFEW ablation).
VARIANTS: dict[str, Config] = {
    "paper": Config(),  # ResNet18 + AGA + DTFormer
    "tformer": Config(attention="none", temporal="tformer"),  # ResNet18 + TFormer
    "dtformer": Config(attention="none"),  # ResNet18 + DTFormer
    "cbam_dtformer": Config(attention="cbam"),  # ResNet18 + CBAM + DTFormer
    "se_dtformer": Config(attention="se"),  # ResNet18 + SE + DTFormer
    "aga_tformer": Config(temporal="tformer"),  # ResNet18 + AGA + TFormer
    "aga_dtformer_nogate": Config(aga_gate=False),  # ResNet18 + AGA + DTFormer (w/o gate)
}


def example_inputs(config: Config, batch_size: int = 1) -> tuple[Tensor]:
    """A random clip batch of the configured size, shape (batch_size, T, C, H, W)."""
    c = config
    return (torch.randn(batch_size, c.num_frames, c.in_channels, c.image_size, c.image_size),)


# ---------------------------------------------------------------------------------------------- AGA


def cross_statistics(l1: Tensor, l2: Tensor) -> tuple[Tensor, Tensor]:
    """Eqs 3-4 and the row statistics: A = l1·l2ᵀ, B = l2·l1ᵀ, a = rowmean(A), b = rowmean(B).

    l1, l2 : Tensor, shape = (N, C)
    returns : (a, b), each of shape (N, C)
    """
    N, C = l1.shape
    A = torch.matmul(l1[:, :, None], l2[:, None, :])  # (N, C, C)
    B = torch.matmul(l2[:, :, None], l1[:, None, :])  # (N, C, C)
    return A.mean(dim=2), B.mean(dim=2)


def gated_fusion(a: Tensor, b: Tensor, w: Tensor | float) -> Tensor:
    """Eq 6: f_att = w·a + (1 - w)·b, elementwise; all of shape (N, C) (w may be a float)."""
    return w * a + (1 - w) * b


class ACA(nn.Module):
    """Adaptive Channel Attention (eqs 1-7): ``X^c = X ⊗ σ(w·a + (1 - w)·b)``.

    Args:
        channels: C, channels of the feature map.
        kernel_size: 1-D convolution over channels that turns f_avg into l1.
        gate: learn the fusion weight w (eq 5); False fixes w = 0.5 (Table 2, "w/o gate").
        gate_kernel: 1-D convolution over channels that turns [a, b] into w.
    """

    def __init__(self, *, channels: int, kernel_size: int = 3, gate: bool = True, gate_kernel: int = 3):
        super().__init__()
        self.local = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.fc = nn.Linear(channels, channels)
        self.gate = nn.Conv1d(2, 1, gate_kernel, padding=gate_kernel // 2) if gate else None

    def fusion_weight(self, a: Tensor, b: Tensor) -> Tensor | float:
        """Eq 5: w = σ(Conv1D([a, b])), shape (N, C); 0.5 without the gate."""
        if self.gate is None:
            return 0.5
        return torch.sigmoid(self.gate(torch.stack([a, b], dim=1))[:, 0])  # (N, C)

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (N, C, H, W), N = B * T frames
        returns : Tensor, shape = (N, C, H, W)
        """
        N, C, H, W = x.shape
        f_avg = x.mean(dim=(2, 3))  # (N, C)  eq 1
        f_max = x.amax(dim=(2, 3))  # (N, C)  eq 2
        l1 = self.local(f_avg[:, None, :])[:, 0]  # (N, C)
        l2 = self.fc(f_max)  # (N, C)
        a, b = cross_statistics(l1, l2)  # (N, C) each, eqs 3-4
        f_att = gated_fusion(a, b, self.fusion_weight(a, b))  # (N, C)  eqs 5-6
        return x * torch.sigmoid(f_att)[:, :, None, None]  # eq 7


class GlobalConv(nn.Module):
    """Eq 12: ``z_gc = σ(GAP_H(Conv_{1×k}(X)) + GAP_W(Conv_{k×1}(X)))`` with full-extent kernels.

    Args:
        channels: C, channels in and out.
        size: k, the feature map's height and width at the configured input size.
    """

    def __init__(self, *, channels: int, size: int):
        super().__init__()
        self.size = size
        self.conv_w = nn.Conv1d(channels, channels, size)  # the 1×k kernel, sliding along W
        self.conv_h = nn.Conv1d(channels, channels, size, bias=False)  # the k×1 kernel, along H

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (N, C, H, W)
        returns : Tensor, shape = (N, C), values in (0, 1)
        """
        N, C, H, W = x.shape
        rows = x.mean(dim=2)  # (N, C, W)  averaging over H first equals averaging the 1×k output
        cols = x.mean(dim=3)  # (N, C, H)
        if W != self.size:
            rows = F.adaptive_avg_pool1d(rows, self.size)  # (N, C, k)
        if H != self.size:
            cols = F.adaptive_avg_pool1d(cols, self.size)  # (N, C, k)
        return torch.sigmoid(self.conv_w(rows)[:, :, 0] + self.conv_h(cols)[:, :, 0])  # (N, C)


class AGA(nn.Module):
    """Adaptive Global Attention (§3.2): ACA then GCA, with a residual connection.

    ``M = X + X^s ⊗ z_gc ⊗ GAP_t(z_gc)``, where ``X^s = X^c ⊗ σ(Conv([mean_C X^c, max_C X^c]))`` (eq 11),
    ``X^c`` is ACA's output (eq 7) and ``z_gc`` is eq 12.

    Args:
        channels: C, channels of the feature map.
        size: spatial size of the feature map at the configured input size (GCA's global kernel).
        gate: learnable gated fusion in ACA (False: w = 0.5).
        aca_kernel: ACA's 1-D convolution kernel.
        gate_kernel: kernel of the 1-D convolution that produces the gate.
        spatial_kernel: kernel of GCA's spatial convolution (eq 10).
    """

    def __init__(
        self,
        *,
        channels: int,
        size: int,
        gate: bool = True,
        aca_kernel: int = 3,
        gate_kernel: int = 3,
        spatial_kernel: int = 7,
    ):
        super().__init__()
        self.aca = ACA(channels=channels, kernel_size=aca_kernel, gate=gate, gate_kernel=gate_kernel)
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)
        self.global_conv = GlobalConv(channels=channels, size=size)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """
        x : Tensor, shape = (B * T, C, H, W), T = num_frames
        returns : Tensor, shape = (B * T, C, H, W)
        """
        N, C, H, W = x.shape
        B, T = N // num_frames, num_frames
        xc = self.aca(x)  # (N, C, H, W)  eq 7
        z = torch.cat([xc.mean(dim=1, keepdim=True), xc.amax(dim=1, keepdim=True)], dim=1)  # (N, 2, H, W)
        xs = xc * torch.sigmoid(self.spatial(z))  # (N, C, H, W)  eqs 8-11
        z_gc = self.global_conv(x).view(B, T, C)  # (B, T, C)  eq 12
        scale = z_gc * z_gc.mean(dim=1, keepdim=True)  # (B, T, C)  eq 13
        return x + xs * scale.reshape(N, C, 1, 1)


class SE(nn.Module):
    """Squeeze-and-Excitation (Hu et al. 2018): ``X ⊗ σ(W2 δ(W1 GAP(X)))``.

    Args:
        channels: C.
        reduction: bottleneck ratio r (hidden width max(1, C // r)).
    """

    def __init__(self, *, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: Tensor, num_frames: int = 1) -> Tensor:
        """
        x : Tensor, shape = (N, C, H, W); ``num_frames`` is ignored (per-frame attention)
        returns : Tensor, shape = (N, C, H, W)
        """
        N, C, H, W = x.shape
        return x * torch.sigmoid(self.fc(x.mean(dim=(2, 3))))[:, :, None, None]


class CBAM(nn.Module):
    """CBAM (Woo et al. 2018, [40]): channel then spatial attention.

    ``X' = X ⊗ σ(MLP(GAP X) + MLP(GMP X))``, ``X'' = X' ⊗ σ(conv_{k×k}([mean_C X', max_C X']))``.

    Args:
        channels: C.
        reduction: bottleneck ratio of the shared MLP.
        spatial_kernel: kernel of the spatial convolution.
    """

    def __init__(self, *, channels: int, reduction: int = 16, spatial_kernel: int = 7):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
        )
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)

    def forward(self, x: Tensor, num_frames: int = 1) -> Tensor:
        """
        x : Tensor, shape = (N, C, H, W); ``num_frames`` is ignored (per-frame attention)
        returns : Tensor, shape = (N, C, H, W)
        """
        N, C, H, W = x.shape
        channel = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))  # (N, C)
        x = x * torch.sigmoid(channel)[:, :, None, None]
        z = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (N, 2, H, W)
        return x * torch.sigmoid(self.spatial(z))


# ------------------------------------------------------------------------------------------ DTFormer


def temporal_differences(x: Tensor, shift: int = 1) -> tuple[Tensor, Tensor]:
    """Eqs 14-17: forward and backward differences between frames ``shift`` apart.

    ``Δf_t = X_{t+s} - X_t`` for t = 1..T-s and ``Δb_t = X_t - X_{t-s}`` for t = s+1..T, both 0 elsewhere
    (the cyclic wrap-around of Roll is masked, following the paper's index ranges).

    x : Tensor, shape = (B, T, C)
    returns : (Δf, Δb), each of shape (B, T, C)
    """
    B, T, C = x.shape
    nxt = torch.roll(x, shifts=-shift, dims=1)  # (B, T, C)  X_{t+s}: the paper's Roll(X, +s), eq 14
    prv = torch.roll(x, shifts=shift, dims=1)  # (B, T, C)  X_{t-s}: the paper's Roll(X, -s), eq 15
    t = torch.arange(T, device=x.device)[None, :, None]  # (1, T, 1)
    delta_f = torch.where(t < T - shift, nxt - x, torch.zeros_like(x))  # eq 16
    delta_b = torch.where(t >= shift, x - prv, torch.zeros_like(x))  # eq 17
    return delta_f, delta_b


class DifferentialEnhancement(nn.Module):
    """Differential temporal enhancement (eqs 14-21): ``X' + σ(DWConv1D(Δ)) ⊙ Δ``, ``Δ = α_f Δf + α_b Δb``.

    Args:
        dim: C, feature channels.
        shift: s, frames between the differenced features.
        kernel_size: temporal kernel of the depthwise convolution (eq 19).
    """

    def __init__(self, *, dim: int, shift: int = 1, kernel_size: int = 3):
        super().__init__()
        self.shift = shift
        self.alpha_f = nn.Parameter(torch.tensor(0.5))
        self.alpha_b = nn.Parameter(torch.tensor(0.5))
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (B, T, C)
        returns : Tensor, shape = (B, T, C)
        """
        B, T, C = x.shape
        delta_f, delta_b = temporal_differences(x, self.shift)  # (B, T, C) each
        delta = self.alpha_f * delta_f + self.alpha_b * delta_b  # (B, T, C)  eq 18
        gate = torch.sigmoid(self.dwconv(delta.transpose(1, 2)).transpose(1, 2))  # (B, T, C)  eqs 19-20
        return x + gate * delta  # eq 21


class Attention(nn.Module):
    """Multi-head self-attention (eqs 23-24): ``softmax(Q Kᵀ / √C') V`` per head, C' = C / heads.

    Args:
        dim: C, token width.
        heads: number of heads.
    """

    def __init__(self, *, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (B, L, C)
        returns : Tensor, shape = (B, L, C)
        """
        B, L, C = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.heads, C // self.heads)  # (B, L, 3, h, C')
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B, h, L, C') each
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(C // self.heads), dim=-1)  # (B, h, L, L)
        out = (attn @ v).transpose(1, 2).reshape(B, L, C)  # (B, L, C)
        return self.proj(out)


class EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer: ``Z = Z + MSA(LN(Z))``; ``Z = Z + MLP(LN(Z))`` (eq 25).

    Args:
        dim: token width.
        heads: attention heads.
        mlp_dim: hidden width of the two-layer GELU MLP.
        dropout: dropout after the attention and in the MLP.
    """

    def __init__(self, *, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim=dim, heads=heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, dim),
            nn.Dropout(dropout),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (B, L, C)
        returns : Tensor, shape = (B, L, C)
        """
        B, L, C = x.shape
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


class DTFormer(nn.Module):
    """Differential Temporal Transformer (§3.3): frame features -> class token + T frame tokens.

    ``Z = [cls; X' + G ⊙ Δ] + e_pos`` (eqs 21-22), then M encoder layers (eqs 23-25). With
    ``differential=False`` it is the plain TFormer of Table 2 (``Z = [cls; X'] + e_pos``).

    Args:
        dim: C, channels of the backbone features and width of the tokens.
        num_frames: T, frames per clip (sets the position embedding length T + 1).
        depth: M, number of encoder layers.
        heads: attention heads.
        mlp_dim: MLP hidden width.
        context_kernel: kernel of the convolution before the per-frame pooling.
        differential: use the differential enhancement (DTFormer) or not (TFormer).
        shift: s of eqs 14-15.
        diff_kernel: kernel of the depthwise convolution of eq 19.
        dropout: dropout in the encoder layers.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_frames: int,
        depth: int = 2,
        heads: int = 8,
        mlp_dim: int = 1024,
        context_kernel: int = 3,
        differential: bool = True,
        shift: int = 1,
        diff_kernel: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.num_frames = num_frames
        self.context = nn.Sequential(
            nn.Conv2d(dim, dim, context_kernel, padding=context_kernel // 2, bias=False),
            nn.BatchNorm2d(dim),
            nn.ReLU(inplace=True),
        )
        self.enhance = DifferentialEnhancement(dim=dim, shift=shift, kernel_size=diff_kernel) if differential else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_frames + 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.layers = nn.ModuleList(
            [EncoderLayer(dim=dim, heads=heads, mlp_dim=mlp_dim, dropout=dropout) for _ in range(depth)]
        )

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (B, T, C, h, w), backbone features of each frame
        returns : Tensor, shape = (B, T + 1, C), the class token first
        """
        B, T, C, h, w = x.shape
        if T != self.num_frames:
            raise ValueError(f"clip has {T} frames; this model's position embedding is for {self.num_frames}")
        x = self.context(x.reshape(B * T, C, h, w)).mean(dim=(2, 3))  # (B * T, C)
        x = x.view(B, T, C)  # (B, T, C)  the sequence X' of §3.3
        if self.enhance is not None:
            x = self.enhance(x)  # (B, T, C)  eqs 14-21
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1) + self.pos_embed  # (B, T + 1, C)  eq 22
        for layer in self.layers:
            x = layer(x)  # (B, T + 1, C)
        return x


# --------------------------------------------------------------------------------------------- model


def _stage_attention(config: Config) -> dict[int, nn.Module]:
    if config.attention == "none":
        return {}
    sizes = stage_sizes(config.image_size, len(config.widths))
    modules: dict[int, nn.Module] = {}
    for stage in config.attention_stages:
        channels = config.widths[stage - 1]
        if config.attention == "aga":
            modules[stage] = AGA(
                channels=channels,
                size=sizes[stage - 1],
                gate=config.aga_gate,
                aca_kernel=config.aca_kernel,
                gate_kernel=config.gate_kernel,
                spatial_kernel=config.spatial_kernel,
            )
        elif config.attention == "se":
            modules[stage] = SE(channels=channels, reduction=config.reduction)
        else:
            modules[stage] = CBAM(channels=channels, reduction=config.reduction, spatial_kernel=config.spatial_kernel)
    return modules


class Model(nn.Module):
    """AGDTNet (Figure 1): ResNet18 + AGA after stages 2 and 3, DTFormer, linear classifier.

    Key equations: ACA ``f_att = w·a + (1 - w)·b`` (eq 6), ``X^c = X ⊗ σ(f_att)`` (eq 7); DTFormer
    ``X' ← X' + σ(DWConv1D(Δ)) ⊙ Δ`` with ``Δ = α_f (X'_{t+1} - X'_t) + α_b (X'_t - X'_{t-1})`` (eqs 16-21).
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.backbone = ResNet(
            layers=config.layers,
            widths=config.widths,
            in_channels=config.in_channels,
            stage_attention=_stage_attention(config),
        )
        dim = config.widths[-1]
        self.temporal = DTFormer(
            dim=dim,
            num_frames=config.num_frames,
            depth=config.depth,
            heads=config.heads,
            mlp_dim=config.mlp_dim,
            context_kernel=config.context_kernel,
            differential=config.temporal == "dtformer",
            shift=config.shift,
            diff_kernel=config.diff_kernel,
            dropout=config.dropout,
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, config.num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (B, T, C, H, W)
        returns : Tensor, shape = (B, T + 1, D), D = widths[-1]; token 0 is the class token
        """
        B, T, C, H, W = x.shape
        f = self.backbone.forward_features(x.reshape(B * T, C, H, W), num_frames=T)  # (B * T, D, h, w)
        f = f.view(B, T, *f.shape[1:])  # (B, T, D, h, w)
        return self.temporal(f)  # (B, T + 1, D)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """
        x : Tensor, shape = (B, T + 1, D), the output of ``forward_features``
        returns : Tensor, shape = (B, D) if ``pre_logits`` else (B, num_classes)
        """
        B, L, D = x.shape
        x = self.norm(x[:, 0])  # (B, D)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (B, T, C, H, W)
        returns : Tensor, shape = (B, num_classes), logits
        """
        B, T, C, H, W = x.shape
        return self.forward_head(self.forward_features(x))
