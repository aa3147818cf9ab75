"""Teacher gesture (action expression) recognition by spatiotemporal feature disentanglement.

Paper: "teacher-expression-and-gesture" (shared/papers/teacher-expression-and-gesture.txt), §3:
§3.1 global feature network (SE-ResNet-50 stages 1-3) with a regional layer network (patch cropping,
local convolution, identity addition); §3.2 self-attention spatiotemporal disentanglement, eqs 11-12
(spatial attention across the V body regions of each frame, averaged over frames; temporal attention
across the S frames; tanh attention maps multiplied into the input; L stacked layers), then global
average pooling, an FC layer and the classifier. Ablations: Table 4 (regional layer), Table 5
(disentanglement module).

Departures from the paper (it leaves most sizes unspecified; what we chose and why):
1. Body regions come from the 33 MediaPipe BlazePose keypoints the pipeline extracts, a (B, T, 33, 2)
   tensor in input-pixel coordinates. V = 6 regions (``BODY_REGIONS``): head, left / right hand,
   left / right arm, upper body (the paper names "head, hands, upper body"); boxes are keypoint bounding
   boxes padded in shoulder widths, hands get a minimum size. Left / right are the person's sides, as in
   BlazePose.
2. Each region's feature for one frame is a RoI Align average (4 x 4 bilinear samples) over its box on
   the regional-layer output, giving the V x S x Z input of §3.2.
3. Backbone features are reduced from 1024 to Z = 256 channels by a 1x1 convolution (+BN, ReLU) before
   the regional layer, so that the per-patch convolutions stay affordable.
4. Regional layer after Zhao et al. (DRML, CVPR 2016): the map is cut into a ``region_grid`` x
   ``region_grid`` grid of patches (4 x 4; the paper gives no number), each patch gets its own
   BN-ReLU-3x3 convolution (weights shared over time), whose output is added to the patch.
5. Eqs 11-12 write softmax, the text says the maps are computed with tanh and multiplied into the input
   features; we use ``tanh(delta(A) psi(A)^T / sqrt(d))``, with the spatial map averaged over the S
   frames (the paper's "compromise") and the temporal map averaged over the V regions, d = Z / 4, one
   head. Each attention is followed by a linear projection, a residual connection and LayerNorm so that
   L = 4 layers can be stacked (the paper gives neither L nor these details).
6. Learned region and frame embeddings are added to the input of the first layer: without them
   attention cannot tell regions or frames apart. They fix S = ``num_frames``.
7. Head: GAP over frames and regions, FC (Z -> 256, ReLU), linear classifier. 8 classes, 16 frames and
   224 px frames by default: the paper gives none of these. No ImageNet initialisation.
8. Without the regional layer (Table 4) the reduced backbone map goes straight to region pooling;
   without disentanglement (Table 5) the region features go straight to GAP.
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.roi_align import boxes_from_points, roi_align
from models.se_resnet import SEResNet, stage_channels

NUM_KEYPOINTS = 33  # BlazePose: 0 nose, 11/12 shoulders, 13/14 elbows, 15/16 wrists, 17-22 hands, 23/24 hips


@dataclass(frozen=True)
class BodyRegion:
    """Keypoints a region encloses, padding (left, top, right, bottom) and minimum side in shoulder widths."""

    name: str
    keypoints: tuple[int, ...]
    pad: tuple[float, float, float, float]
    min_size: float = 0.0


BODY_REGIONS = (
    BodyRegion("head", tuple(range(0, 11)), (0.15, 0.35, 0.15, 0.2)),  # nose, eyes, ears, mouth
    BodyRegion("left_hand", (15, 17, 19, 21), (0.1, 0.1, 0.1, 0.1), min_size=0.4),  # wrist, pinky, index, thumb
    BodyRegion("right_hand", (16, 18, 20, 22), (0.1, 0.1, 0.1, 0.1), min_size=0.4),
    BodyRegion("left_arm", (11, 13, 15), (0.1, 0.1, 0.1, 0.1)),  # shoulder, elbow, wrist
    BodyRegion("right_arm", (12, 14, 16), (0.1, 0.1, 0.1, 0.1)),
    BodyRegion("upper_body", (11, 12, 23, 24), (0.1, 0.1, 0.1, 0.0)),  # shoulders and hips
)


@dataclass
class Config:
    num_classes: int = 8
    num_frames: int = 16  # S
    image_size: int = 224  # side the pipeline resizes frames to
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layers: tuple[int, ...] = (3, 4, 6, 3)  # stage 4 is not built
    base_width: int = 64
    se_reduction: int = 16
    channels: int = 256  # Z
    regional_layer: bool = True
    region_grid: int = 4
    disentangle: bool = True
    num_layers: int = 4  # L
    head_hidden: int = 256

    def __post_init__(self):
        self.mean, self.std, self.layers = tuple(self.mean), tuple(self.std), tuple(self.layers)


VARIANTS: dict[str, Config] = {
    "paper": Config(),
    "no_regional_layer": Config(regional_layer=False),  # Table 4
    "no_disentanglement": Config(disentangle=False),  # Table 5
}


class RegionalLayer(nn.Module):
    """Patch cropping, local convolution, identity addition: ``patch_ij + conv_ij(relu(bn_ij(patch_ij)))``."""

    def __init__(self, *, channels: int, grid: int = 4):
        """
        Args:
            channels: channels of the feature map.
            grid: patches per side.
        """
        super().__init__()
        self.grid = grid
        self.local = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))
            for _ in range(grid * grid)
        )

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (N, C, H, W)
        """
        N, C, H, W = x.shape
        if min(H, W) < self.grid:
            raise ValueError(f"feature map {H}x{W} is smaller than the {self.grid}x{self.grid} patch grid")
        rows = []
        for i, band in enumerate(x.tensor_split(self.grid, dim=2)):
            patches = band.tensor_split(self.grid, dim=3)
            rows.append(torch.cat([p + self.local[i * self.grid + j](p) for j, p in enumerate(patches)], dim=3))
        return torch.cat(rows, dim=2)  # (N, C, H, W)


class DisentangledAttentionLayer(nn.Module):
    """Spatial then temporal tanh self-attention, eqs 11-12 with the paper's frame averaging.

    Spatial: ``X = tanh(1/S sum_s delta(A_s) psi(A_s)^T / sqrt(d))`` (V x V), ``A <- LN(A + W(X A_s))``.
    Temporal: ``X = tanh(1/V sum_v delta'(A_v) psi'(A_v)^T / sqrt(d))`` (S x S), likewise.
    """

    def __init__(self, *, channels: int, attention_dim: int):
        """
        Args:
            channels: Z.
            attention_dim: d, width of the embeddings delta and psi.
        """
        super().__init__()
        self.scale = 1 / math.sqrt(attention_dim)
        self.spatial_delta = nn.Linear(channels, attention_dim)
        self.spatial_psi = nn.Linear(channels, attention_dim)
        self.spatial_out = nn.Linear(channels, channels)
        self.spatial_norm = nn.LayerNorm(channels)
        self.temporal_delta = nn.Linear(channels, attention_dim)
        self.temporal_psi = nn.Linear(channels, attention_dim)
        self.temporal_out = nn.Linear(channels, channels)
        self.temporal_norm = nn.LayerNorm(channels)

    def spatial_map(self, a: Tensor) -> Tensor:
        """
        a : Tensor, shape = (B, S, V, Z)

        Returns the frame-averaged V x V map, shape (B, V, V).
        """
        B, S, V, Z = a.shape
        q, k = self.spatial_delta(a), self.spatial_psi(a)  # (B, S, V, d)
        return torch.tanh(torch.einsum("bsvd,bswd->bvw", q, k) * self.scale / S)

    def temporal_map(self, a: Tensor) -> Tensor:
        """
        a : Tensor, shape = (B, S, V, Z)

        Returns the region-averaged S x S map, shape (B, S, S).
        """
        B, S, V, Z = a.shape
        q, k = self.temporal_delta(a), self.temporal_psi(a)  # (B, S, V, d)
        return torch.tanh(torch.einsum("bsvd,btvd->bst", q, k) * self.scale / V)

    def forward(self, a: Tensor) -> Tensor:
        """
        a : Tensor, shape = (B, S, V, Z)
        """
        B, S, V, Z = a.shape
        x = self.spatial_map(a)  # (B, V, V)
        a = self.spatial_norm(a + self.spatial_out(torch.einsum("bvw,bswz->bsvz", x, a)))  # (B, S, V, Z)
        x = self.temporal_map(a)  # (B, S, S)
        return self.temporal_norm(a + self.temporal_out(torch.einsum("bst,btvz->bsvz", x, a)))


class Disentanglement(nn.Module):
    """Region and frame embeddings followed by L disentangled attention layers (§3.2)."""

    def __init__(self, *, channels: int, num_regions: int, num_frames: int, num_layers: int):
        """
        Args:
            channels: Z.
            num_regions: V.
            num_frames: S.
            num_layers: L.
        """
        super().__init__()
        self.region_embed = nn.Parameter(torch.randn(num_regions, channels) * 0.02)
        self.frame_embed = nn.Parameter(torch.randn(num_frames, channels) * 0.02)
        self.layers = nn.ModuleList(
            DisentangledAttentionLayer(channels=channels, attention_dim=max(channels // 4, 1))
            for _ in range(num_layers)
        )

    def forward(self, a: Tensor) -> Tensor:
        """
        a : Tensor, shape = (B, S, V, Z)
        """
        B, S, V, Z = a.shape
        a = a + self.frame_embed[:, None] + self.region_embed  # (B, S, V, Z)
        for layer in self.layers:
            a = layer(a)
        return a


class Model(nn.Module):
    """SE-ResNet stages 1-3 + regional layer + spatiotemporal disentangled attention + GAP/FC/classifier.

    Key equation (eq 11 with the text's tanh and frame averaging): the V x V spatial attention map
    ``X = tanh(mean_s delta(A_s) psi(A_s)^T / sqrt(d))`` multiplies the region features ``A_s`` of
    every frame; the S x S temporal map does the same across frames.
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        cfg = config
        self.backbone = SEResNet(
            layers=cfg.layers, base_width=cfg.base_width, se_reduction=cfg.se_reduction, num_stages=3
        )
        self.reduce = nn.Sequential(
            nn.Conv2d(stage_channels(cfg.base_width, 3), cfg.channels, 1, bias=False),
            nn.BatchNorm2d(cfg.channels),
            nn.ReLU(inplace=True),
        )
        self.regional = RegionalLayer(channels=cfg.channels, grid=cfg.region_grid) if cfg.regional_layer else None
        self.disentangle = (
            Disentanglement(
                channels=cfg.channels,
                num_regions=len(BODY_REGIONS),
                num_frames=cfg.num_frames,
                num_layers=cfg.num_layers,
            )
            if cfg.disentangle
            else None
        )
        self.fc = nn.Linear(cfg.channels, cfg.head_hidden)
        self.classifier = nn.Linear(cfg.head_hidden, cfg.num_classes)
        self.register_buffer("pads", torch.tensor([r.pad for r in BODY_REGIONS]), persistent=False)
        self.register_buffer("min_sizes", torch.tensor([r.min_size for r in BODY_REGIONS]), persistent=False)

    def region_boxes(self, keypoints: Tensor, image_size: tuple[int, int]) -> Tensor:
        """
        keypoints : Tensor, shape = (N, 33, 2), BlazePose in input-pixel (x, y)

        Returns boxes (x0, y0, x1, y1), shape (N, V, 4); the unit is the shoulder width, at least a
        tenth of the shorter image side.
        """
        N, K, _ = keypoints.shape
        unit = (keypoints[:, 11] - keypoints[:, 12]).norm(dim=-1).clamp(min=0.1 * min(image_size))  # (N,)
        groups = [r.keypoints for r in BODY_REGIONS]
        return boxes_from_points(
            keypoints, groups, self.pads, scale=unit, image_size=image_size, min_size=self.min_sizes
        )

    def forward_features(self, x: Tensor, keypoints: Tensor) -> Tensor:
        """
        x : Tensor, shape = (B, T, C, H, W)
        keypoints : Tensor, shape = (B, T, 33, 2), BlazePose in input-pixel (x, y)

        Returns the region features, shape (B, T, V, Z).
        """
        B, T, C, H, W = x.shape
        if keypoints.shape != (B, T, NUM_KEYPOINTS, 2):
            raise ValueError(f"keypoints must have shape {(B, T, NUM_KEYPOINTS, 2)}, got {tuple(keypoints.shape)}")
        if self.disentangle is not None and T != self.config.num_frames:
            raise ValueError(f"disentanglement needs T == num_frames = {self.config.num_frames}, got {T}")
        f = self.reduce(self.backbone(x.reshape(B * T, C, H, W)))  # (B*T, Z, H/16, W/16)
        if self.regional is not None:
            f = self.regional(f)  # (B*T, Z, H/16, W/16)
        boxes = self.region_boxes(keypoints.reshape(B * T, NUM_KEYPOINTS, 2).to(f.dtype), (H, W))  # (B*T, V, 4)
        a = roi_align(f, boxes, image_size=(H, W), output_size=1, sampling_ratio=4)  # (B*T, V, Z, 1, 1)
        a = a.reshape(B, T, len(BODY_REGIONS), -1)  # (B, T, V, Z)
        return a if self.disentangle is None else self.disentangle(a)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """
        x : Tensor, shape = (B, T, V, Z)

        Returns the FC features (B, head_hidden) when ``pre_logits``, else logits (B, num_classes).
        """
        B, T, V, Z = x.shape
        x = torch.relu(self.fc(x.mean(dim=(1, 2))))  # (B, head_hidden)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: Tensor, keypoints: Tensor) -> Tensor:
        """
        x : Tensor, shape = (B, T, C, H, W)
        keypoints : Tensor, shape = (B, T, 33, 2)

        Returns logits, shape (B, num_classes).
        """
        B, T, C, H, W = x.shape
        return self.forward_head(self.forward_features(x, keypoints))
