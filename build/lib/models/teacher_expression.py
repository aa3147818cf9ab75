"""Teacher facial expression recognition from facial action units and temporal attention.

Paper: "teacher-expression-and-gesture" (shared/papers/teacher-expression-and-gesture.txt), §2:
§2.1 AU grouping rules and RoI division (9 AU RoIs in 8 groups, placed from facial landmarks);
§2.2 RoI feature network (SE-ResNet-50 stages 1-3 as global network, RoI features, stage 4 as RoI
fine-grained network, spatial / temporal / channel compression, upper / middle / lower grouping with a
1x1 convolution, ConvLSTM); §2.3 temporal-attention ConvLSTM, eqs 1-5; §2.4 label correction (importance
weight eq 6, ranking with high-weight share eta = 0.7, re-labelling eq 7); §2.5 losses, eqs 8-10.
Ablations: Table 1 (AU RoIs vs important facial regions), Table 2 (temporal attention), Table 3 (label
correction).

Departures from the paper (it leaves most sizes unspecified; what we chose and why):
1. Landmarks: the pipeline supplies 68-point iBUG landmarks (the Dlib layout the paper uses) as a
   (B, T, 68, 2) tensor in input-pixel coordinates; we do not run Dlib inside the model.
2. The AU -> region table (``AU_ROIS``) is ours: the paper names 9 AU RoIs in 8 groups but does not
   list them. Each RoI follows the FACS muscles of its AUs (Ekman, Friesen & Hager 2002); the only
   bilateral pair is AU2 (outer brows, one group, two RoIs), since an axis-aligned box around both outer
   brows would swallow the inner brow. The "important facial regions" table (``FACIAL_REGIONS``) for
   Table 1 uses facial organs (brows, eyes, nose, cheeks, mouth, chin), also 9 RoIs. Boxes are the
   bounding boxes of the named landmarks padded by multiples of the outer inter-ocular distance.
3. RoI Align (Mask R-CNN style, ``models.roi_align``) to ``roi_size`` x ``roi_size`` (14; stage 4 halves
   it to 7x7), the paper does not say how RoIs are pooled.
4. "Spatial attention with temporal and spatial compression" is read as one sigmoid gate per RoI
   computed by an FC layer from the RoI feature averaged over time and space; "channel compression" as a
   two-layer FC (1x1 convolutions, ReLU) shared by all RoIs, 2048 -> 512 -> 256 channels at paper size.
5. Each part's RoIs are concatenated on channels and reduced by a 1x1 convolution followed by BatchNorm
   and ReLU (the paper names only the 1x1 convolution) to 256 channels. One ConvLSTM per face part
   (upper, middle, lower), 256 hidden channels, 3x3 kernels, without the peephole terms of Shi et al.
   (2015); the three outputs are concatenated on channels to give G in eq 1.
6. Eqs 3 and 4 use ReLU between the two FC layers; the hidden size of Q1/Q2 is channels / 16 and of
   Q3/Q4 is S. Eq 4 acts on the vector of S frame scores, so ``num_frames`` (S) is fixed by the config.
7. The head pools the attended map of eq 5 globally and applies one FC layer (the paper only says
   "classifier"); that pooled vector is C_u of eq 6.
8. Eq 6 has a single FC layer Q5 before the sigmoid; the text mentions "two fully connected layers".
   We follow the equation.
9. The paper gives no values for zeta1, zeta2 and gamma; we use 0.2, 0.15 and 0.5 (the values of the
   self-cure network of Wang et al., CVPR 2020, which this module mirrors). Ranking is within a batch;
   the high-weight group has round(eta * V) samples, clamped so both groups are non-empty. Eq 7 uses the
   softmax of the unweighted logits.
10. Without temporal attention (Table 2) the ConvLSTM outputs are averaged over time (uniform weights),
    so only the attention differs between the two rows.
11. 7 classes (six basic emotions + neutral), 16-frame clips and 224 px faces by default: the paper
    gives none of these (the pipeline's 112 px crops are resized to ``image_size``; any size that
    leaves stage 3 a map of at least 1x1 runs). No ImageNet initialisation (see ``models.se_resnet``).
12. The paper does not say when re-labelling starts or how corrected labels persist; ``relabel`` is a
    plain function and the trainer owns that schedule (the self-cure network starts after ~10 epochs).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.roi_align import boxes_from_points, roi_align
from models.se_resnet import SEResNet, make_stage, stage_channels

NUM_LANDMARKS = 68
PARTS = ("upper", "middle", "lower")


@dataclass(frozen=True)
class RoISpec:
    """One RoI: landmarks it encloses and its padding in inter-ocular distances (left, top, right, bottom).

    ``left`` / ``right`` are image sides (iBUG 17-21 is the subject's right brow, drawn on the image left).
    """

    name: str
    group: str
    part: str
    landmarks: tuple[int, ...]
    pad: tuple[float, float, float, float]
    action_units: tuple[int, ...] = ()
    muscles: str = ""


# 9 AU RoIs in 8 groups (§2.1). Landmark indices are 0-based iBUG-68: jaw 0-16, brows 17-21 / 22-26,
# nose bridge 27-30, nostrils 31-35, eyes 36-41 / 42-47, outer lips 48-59, inner lips 60-67.
# Muscles after the FACS manual (Ekman & Friesen 1978; Ekman, Friesen & Hager 2002).
# fmt: off
AU_ROIS = (
    RoISpec("inner_brow", "brow_inner", "upper", (20, 21, 22, 23, 27), (0.1, 0.35, 0.1, 0.0), (1, 4),
            "AU1 frontalis pars medialis; AU4 corrugator supercilii, depressor supercilii, procerus"),
    RoISpec("outer_brow_left", "brow_outer", "upper", (17, 18, 19, 36), (0.1, 0.3, 0.05, 0.0), (2,),
            "AU2 frontalis pars lateralis"),
    RoISpec("outer_brow_right", "brow_outer", "upper", (24, 25, 26, 45), (0.05, 0.3, 0.1, 0.0), (2,),
            "AU2 frontalis pars lateralis"),
    RoISpec("eyes", "eyelids", "upper", tuple(range(36, 48)), (0.1, 0.1, 0.1, 0.1), (5, 7),
            "AU5 levator palpebrae superioris; AU7 orbicularis oculi pars palpebralis"),
    RoISpec("cheeks", "cheek_raiser", "middle", (1, 15, 40, 41, 46, 47, 29), (0.0, 0.0, 0.0, 0.05), (6,),
            "AU6 orbicularis oculi pars orbitalis"),
    RoISpec("nose", "nose_upper_lip", "middle", (*range(27, 36), 50, 52), (0.1, 0.0, 0.1, 0.0), (9, 10),
            "AU9 levator labii superioris alaeque nasi; AU10 levator labii superioris"),
    RoISpec("lip_corners", "lip_corners", "lower", (31, 35, 48, 54, 57), (0.25, 0.0, 0.25, 0.0),
            (12, 14, 15, 20),
            "AU12 zygomaticus major; AU14 buccinator; AU15 depressor anguli oris; AU20 risorius"),
    RoISpec("lips", "lips", "lower", tuple(range(48, 68)), (0.05, 0.05, 0.05, 0.05), (23, 25),
            "AU23 orbicularis oris; AU25 depressor labii inferioris / relaxed mentalis"),
    RoISpec("chin", "chin_jaw", "lower", (*range(5, 12), 57), (0.0, 0.0, 0.0, 0.0), (17, 26),
            "AU17 mentalis; AU26 relaxed masseter, temporalis and internal pterygoid"),
)
# fmt: on

# Table 1 alternative: "important facial regions", facial organs from the landmark layout, no AUs.
FACIAL_REGIONS = (
    RoISpec("brow_left", "brow_left", "upper", tuple(range(17, 22)), (0.05, 0.1, 0.05, 0.05)),
    RoISpec("brow_right", "brow_right", "upper", tuple(range(22, 27)), (0.05, 0.1, 0.05, 0.05)),
    RoISpec("eye_left", "eye_left", "upper", tuple(range(36, 42)), (0.1, 0.1, 0.1, 0.1)),
    RoISpec("eye_right", "eye_right", "upper", tuple(range(42, 48)), (0.1, 0.1, 0.1, 0.1)),
    RoISpec("nose", "nose", "middle", tuple(range(27, 36)), (0.1, 0.0, 0.1, 0.05)),
    RoISpec("cheek_left", "cheek_left", "middle", (1, 2, 3, 31, 41), (0.0, 0.0, 0.0, 0.0)),
    RoISpec("cheek_right", "cheek_right", "middle", (13, 14, 15, 35, 46), (0.0, 0.0, 0.0, 0.0)),
    RoISpec("mouth", "mouth", "lower", tuple(range(48, 68)), (0.05, 0.05, 0.05, 0.05)),
    RoISpec("chin", "chin", "lower", (*range(6, 11), 57), (0.0, 0.0, 0.0, 0.0)),
)

ROI_RULES = {"action_units": AU_ROIS, "facial_regions": FACIAL_REGIONS}


@dataclass
class Config:
    num_classes: int = 7
    num_frames: int = 16  # S of eqs 1-5
    image_size: int = 224  # side the pipeline resizes face crops to
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layers: tuple[int, ...] = (3, 4, 6, 3)
    base_width: int = 64
    se_reduction: int = 16
    roi_rule: str = "action_units"  # key of ROI_RULES
    roi_size: int = 14
    roi_hidden: int = 512
    roi_channels: int = 256
    part_channels: int = 256
    lstm_channels: int = 256
    temporal_attention: bool = True
    label_correction: bool = True
    eta: float = 0.7  # share of the high-weight group
    relabel_threshold: float = 0.2  # zeta1, eq 7
    weight_margin: float = 0.15  # zeta2, eq 9
    gamma: float = 0.5  # eq 10

    def __post_init__(self):
        if self.roi_rule not in ROI_RULES:
            raise ValueError(f"unknown roi_rule {self.roi_rule!r}; valid: {', '.join(ROI_RULES)}")
        self.mean, self.std, self.layers = tuple(self.mean), tuple(self.std), tuple(self.layers)


VARIANTS: dict[str, Config] = {
    "paper": Config(),
    "facial_regions": Config(roi_rule="facial_regions"),  # Table 1, right column
    "no_temporal_attention": Config(temporal_attention=False),  # Table 2
    "no_label_correction": Config(label_correction=False),  # Table 3
}


class ConvLSTM(nn.Module):
    """Convolutional LSTM (Shi et al., NeurIPS 2015) without peepholes.

    ``[i, f, o, g] = conv([x_t, h_{t-1}])``; ``c_t = s(f) c_{t-1} + s(i) tanh(g)``; ``h_t = s(o) tanh(c_t)``.
    """

    def __init__(self, *, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        """
        Args:
            in_channels: channels of each input frame.
            hidden_channels: channels of the hidden and cell states.
            kernel_size: odd side of the gate convolution.
        """
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                               padding=kernel_size // 2)  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        """
        x : Tensor, shape = (B, T, C, H, W)

        Returns the hidden state of every step, shape (B, T, hidden_channels, H, W).
        """
        B, T, C, H, W = x.shape
        h = x.new_zeros(B, self.hidden_channels, H, W)
        c = torch.zeros_like(h)
        outputs = []
        for t in range(T):
            i, f, o, g = self.gates(torch.cat((x[:, t], h), dim=1)).chunk(4, dim=1)  # each (B, hid, H, W)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class TemporalAttention(nn.Module):
    """Temporal attention over ConvLSTM outputs, eqs 2-5.

    ``o(s) = GAP(G(s))``; ``w(s) = relu(Q2 relu(Q1 o(s)))``; ``x = softmax(Q4 relu(Q3 w))``;
    ``G_hat = sum_s x(s) G(s)``.
    """

    def __init__(self, *, channels: int, num_frames: int, reduction: int = 16):
        """
        Args:
            channels: channels of G(s).
            num_frames: S, the length of the score vector w.
            reduction: Q1 maps channels to channels // reduction.
        """
        super().__init__()
        self.q1 = nn.Linear(channels, max(channels // reduction, 1))
        self.q2 = nn.Linear(max(channels // reduction, 1), 1)
        self.q3 = nn.Linear(num_frames, num_frames)
        self.q4 = nn.Linear(num_frames, num_frames)

    def forward(self, g: Tensor) -> tuple[Tensor, Tensor]:
        """
        g : Tensor, shape = (B, S, C, H, W)

        Returns ``G_hat`` (B, C, H, W) and the attention weights x (B, S).
        """
        B, S, C, H, W = g.shape
        o = g.mean(dim=(3, 4))  # (B, S, C)  eq 2
        w = torch.relu(self.q2(torch.relu(self.q1(o)))).squeeze(-1)  # (B, S)  eq 3
        x = torch.softmax(self.q4(torch.relu(self.q3(w))), dim=-1)  # (B, S)  eq 4
        return torch.einsum("bs,bschw->bchw", x, g), x  # eq 5


class RoICompression(nn.Module):
    """RoI gate from temporal + spatial compression, then channel compression by a two-layer FC.

    ``a_r = sigmoid(q . mean_{t,h,w} F_r)``; ``out_r = relu(W2 relu(W1 (a_r F_r)))`` (W per position).
    """

    def __init__(self, *, in_channels: int, hidden_channels: int, out_channels: int):
        """
        Args:
            in_channels: channels of the RoI fine-grained features.
            hidden_channels: width of the first FC layer.
            out_channels: channels kept per RoI.
        """
        super().__init__()
        self.gate = nn.Linear(in_channels, 1)
        self.compress = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, 1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden_channels, out_channels, 1), nn.ReLU(inplace=True),
        )  # fmt: skip

    def forward(self, f: Tensor) -> Tensor:
        """
        f : Tensor, shape = (B, T, R, C, H, W)

        Returns shape (B, T, R, out_channels, H, W).
        """
        B, T, R, C, H, W = f.shape
        a = torch.sigmoid(self.gate(f.mean(dim=(1, 4, 5))))  # (B, R, 1)
        f = f * a[:, None, :, :, None, None]  # (B, T, R, C, H, W)
        return self.compress(f.reshape(B * T * R, C, H, W)).reshape(B, T, R, -1, H, W)


class Model(nn.Module):
    """AU-RoI + temporal-attention ConvLSTM expression network with a label-correction weight head.

    Key equations: ``G_hat = sum_s softmax(Q4 relu(Q3 w))_s G(s)`` (eqs 4-5) and the importance weight
    ``x_u = sigmoid(Q5 C_u)`` (eq 6) that scales the logits in the loss of eq 8.

    Training with label correction::

        logits, weights = model.forward_with_weights(x, landmarks)
        loss = label_correction_loss(logits, labels, weights, eta=cfg.eta, margin=cfg.weight_margin,
                                     gamma=cfg.gamma)
        labels = relabel(logits, labels, weights, eta=cfg.eta, threshold=cfg.relabel_threshold)
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        cfg = config
        self.specs = ROI_RULES[cfg.roi_rule]
        self.backbone = SEResNet(
            layers=cfg.layers, base_width=cfg.base_width, se_reduction=cfg.se_reduction, num_stages=3
        )
        self.roi_net = make_stage(stage=4, blocks=cfg.layers[3], base_width=cfg.base_width,
                                  se_reduction=cfg.se_reduction)  # fmt: skip
        self.roi_compression = RoICompression(
            in_channels=stage_channels(cfg.base_width, 4),
            hidden_channels=cfg.roi_hidden,
            out_channels=cfg.roi_channels,
        )
        self.part_rois = [[r for r, s in enumerate(self.specs) if s.part == part] for part in PARTS]
        self.part_reduce = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(len(rois) * cfg.roi_channels, cfg.part_channels, 1, bias=False),
                nn.BatchNorm2d(cfg.part_channels),
                nn.ReLU(inplace=True),
            )
            for rois in self.part_rois
        )
        self.lstms = nn.ModuleList(
            ConvLSTM(in_channels=cfg.part_channels, hidden_channels=cfg.lstm_channels) for _ in PARTS
        )
        self.num_features = len(PARTS) * cfg.lstm_channels
        self.temporal_attention = (
            TemporalAttention(channels=self.num_features, num_frames=cfg.num_frames) if cfg.temporal_attention else None
        )
        self.fc = nn.Linear(self.num_features, cfg.num_classes)
        self.importance = nn.Linear(self.num_features, 1) if cfg.label_correction else None  # Q5, eq 6
        self.register_buffer("pads", torch.tensor([s.pad for s in self.specs]), persistent=False)

    def roi_boxes(self, landmarks: Tensor, image_size: tuple[int, int]) -> Tensor:
        """
        landmarks : Tensor, shape = (N, 68, 2) in input-pixel (x, y)

        Returns the RoI boxes (x0, y0, x1, y1), shape (N, R, 4).
        """
        N, K, _ = landmarks.shape
        interocular = (landmarks[:, 36] - landmarks[:, 45]).norm(dim=-1).clamp(min=1.0)  # (N,)
        groups = [s.landmarks for s in self.specs]
        return boxes_from_points(landmarks, groups, self.pads, scale=interocular, image_size=image_size)

    def forward_features(self, x: Tensor, landmarks: Tensor) -> Tensor:
        """
        x : Tensor, shape = (B, T, C, H, W)
        landmarks : Tensor, shape = (B, T, 68, 2), iBUG-68 in input-pixel (x, y)

        Returns the temporally attended map G_hat, shape (B, num_features, roi_size / 2, roi_size / 2).
        """
        B, T, C, H, W = x.shape
        if landmarks.shape != (B, T, NUM_LANDMARKS, 2):
            raise ValueError(f"landmarks must have shape {(B, T, NUM_LANDMARKS, 2)}, got {tuple(landmarks.shape)}")
        if self.temporal_attention is not None and T != self.config.num_frames:
            raise ValueError(f"temporal attention needs T == num_frames = {self.config.num_frames}, got {T}")
        f = self.backbone(x.reshape(B * T, C, H, W))  # (B*T, C3, H/16, W/16)
        boxes = self.roi_boxes(landmarks.reshape(B * T, NUM_LANDMARKS, 2).to(f.dtype), (H, W))  # (B*T, R, 4)
        r = roi_align(f, boxes, image_size=(H, W), output_size=self.config.roi_size)  # (B*T, R, C3, P, P)
        R = r.shape[1]
        r = self.roi_net(r.flatten(0, 1))  # (B*T*R, C4, P/2, P/2)
        r = self.roi_compression(r.reshape(B, T, R, *r.shape[1:]))  # (B, T, R, Cr, p, p)
        parts = []
        for rois, reduce, lstm in zip(self.part_rois, self.part_reduce, self.lstms, strict=True):
            z = reduce(r[:, :, rois].flatten(0, 1).flatten(1, 2))  # (B*T, Cp, p, p)
            parts.append(lstm(z.reshape(B, T, *z.shape[1:])))  # (B, T, Ch, p, p)
        g = torch.cat(parts, dim=2)  # (B, T, 3*Ch, p, p)  G of eq 1
        if self.temporal_attention is None:
            return g.mean(dim=1)  # (B, 3*Ch, p, p)
        return self.temporal_attention(g)[0]  # (B, 3*Ch, p, p)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """
        x : Tensor, shape = (B, num_features, h, w)

        Returns C_u (B, num_features) when ``pre_logits``, else logits (B, num_classes).
        """
        B, C, H, W = x.shape
        x = x.mean(dim=(2, 3))  # (B, C)
        return x if pre_logits else self.fc(x)

    def sample_weights(self, pre_logits: Tensor) -> Tensor:
        """Importance weight of eq 6, ``sigmoid(Q5 C_u)``.

        pre_logits : Tensor, shape = (B, num_features)

        Returns shape (B,).
        """
        if self.importance is None:
            raise RuntimeError("this model was built with label_correction=False")
        return torch.sigmoid(self.importance(pre_logits)).squeeze(-1)

    def forward_with_weights(self, x: Tensor, landmarks: Tensor) -> tuple[Tensor, Tensor]:
        """
        x : Tensor, shape = (B, T, C, H, W)
        landmarks : Tensor, shape = (B, T, 68, 2)

        Returns logits (B, num_classes) and importance weights (B,).
        """
        B, T, C, H, W = x.shape
        pre = self.forward_head(self.forward_features(x, landmarks), pre_logits=True)  # (B, F)
        return self.fc(pre), self.sample_weights(pre)

    def forward(self, x: Tensor, landmarks: Tensor) -> Tensor:
        """
        x : Tensor, shape = (B, T, C, H, W)
        landmarks : Tensor, shape = (B, T, 68, 2)

        Returns logits, shape (B, num_classes).
        """
        B, T, C, H, W = x.shape
        return self.forward_head(self.forward_features(x, landmarks))


def high_weight_mask(weights: Tensor, eta: float = 0.7) -> Tensor:
    """Weight sorting (§2.4): True for the round(eta * V) highest weights, clamped to 1..V-1 when V > 1.

    weights : Tensor, shape = (V,)
    """
    V = weights.shape[0]
    n_high = V if V < 2 else min(max(round(eta * V), 1), V - 1)
    mask = torch.zeros(V, dtype=torch.bool, device=weights.device)
    mask[torch.argsort(weights, descending=True)[:n_high]] = True
    return mask


def weighted_logit_cross_entropy(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """Eq 8: ``-1/V sum_u log(exp(x_u m_{u,h_u}) / sum_k exp(x_u m_{u,k}))``.

    logits : Tensor, shape = (V, L); labels : (V,) int64; weights : (V,)
    """
    return F.cross_entropy(weights[:, None] * logits, labels)


def rank_regularization(weights: Tensor, *, eta: float = 0.7, margin: float = 0.15) -> Tensor:
    """Eq 9: ``max(0, zeta2 - (beta_G - beta_M))``, means of the high / low weight groups; 0 when V < 2.

    weights : Tensor, shape = (V,)
    """
    if weights.shape[0] < 2:
        return weights.sum() * 0
    high = high_weight_mask(weights, eta)
    return torch.relu(margin - (weights[high].mean() - weights[~high].mean()))


def label_correction_loss(
    logits: Tensor,
    labels: Tensor,
    weights: Tensor,
    *,
    eta: float = 0.7,
    margin: float = 0.15,
    gamma: float = 0.5,
) -> Tensor:
    """Eq 10: ``gamma * M_EE + (1 - gamma) * M_QZR``.

    logits : Tensor, shape = (V, L); labels : (V,) int64; weights : (V,)
    """
    regular = rank_regularization(weights, eta=eta, margin=margin)
    return gamma * regular + (1 - gamma) * weighted_logit_cross_entropy(logits, labels, weights)


@torch.no_grad()
def relabel(logits: Tensor, labels: Tensor, weights: Tensor, *, eta: float = 0.7, threshold: float = 0.2) -> Tensor:
    """Eq 7 on the low-weight group: ``h' = h_MAX if O_MAX - O_h > zeta1 else h_ORG``.

    logits : Tensor, shape = (V, L); labels : (V,) int64; weights : (V,)

    Returns the corrected labels, shape (V,); high-weight samples keep theirs.
    """
    probs = torch.softmax(logits, dim=-1)  # (V, L)
    p_max, h_max = probs.max(dim=-1)  # (V,)
    p_label = probs.gather(1, labels[:, None]).squeeze(1)  # (V,)
    change = ~high_weight_mask(weights, eta) & (p_max - p_label > threshold)
    return torch.where(change, h_max, labels)
