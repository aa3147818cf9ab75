"""RoI Align and landmark-driven boxes, written with plain torch ops (no torchvision).

RoI Align follows K. He et al., "Mask R-CNN", ICCV 2017, §3 ("RoIAlign"): each output bin is the mean
of ``sampling_ratio x sampling_ratio`` bilinearly interpolated samples at regularly spaced points inside
the bin; no coordinate is rounded. Boxes are given in input-image pixel coordinates, so the same boxes
serve any feature stride. Used by ``teacher_expression`` (AU RoIs) and ``teacher_gesture`` (body regions).

Departures from Mask R-CNN:
1. Boxes are per image and a fixed number ``R`` per image (a tensor ``(N, R, 4)``), which is what the
   landmark-driven teacher models need, instead of a ragged list with batch indices.
2. Samples outside the feature map read zeros (``grid_sample`` zero padding) rather than being clamped
   to the border; callers clamp boxes to the image first, so this only affects the outermost half pixel.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def roi_align(
    features: Tensor, boxes: Tensor, *, image_size: tuple[int, int], output_size: int, sampling_ratio: int = 2
) -> Tensor:
    """Bilinear RoI Align of ``R`` boxes per image.

    Args:
        features: feature maps, shape (N, C, h, w), covering the whole input image.
        boxes: (x0, y0, x1, y1) in input-pixel coordinates, shape (N, R, 4).
        image_size: (H, W) of the input image the boxes refer to.
        output_size: side P of the square output.
        sampling_ratio: samples per bin side.

    Returns:
        Tensor, shape = (N, R, C, P, P)
    """
    N, C, h, w = features.shape
    R = boxes.shape[1]
    H, W = image_size
    P, s = output_size, sampling_ratio
    # centres of the P*s sample points along each side, as fractions of the box side
    frac = (torch.arange(P * s, device=boxes.device, dtype=boxes.dtype) + 0.5) / (P * s)
    x0, y0, x1, y1 = boxes.unbind(-1)  # each (N, R)
    xs = x0[..., None] + frac * (x1 - x0)[..., None]  # (N, R, P*s)
    ys = y0[..., None] + frac * (y1 - y0)[..., None]  # (N, R, P*s)
    # grid_sample with align_corners=False maps -1 / +1 to the outer edges of the image
    gx = (2 * xs / W - 1)[:, :, None, :].expand(N, R, P * s, P * s)
    gy = (2 * ys / H - 1)[:, :, :, None].expand(N, R, P * s, P * s)
    grid = torch.stack((gx, gy), dim=-1).reshape(N, R * P * s, P * s, 2)  # RoIs stacked along height
    samples = F.grid_sample(features, grid.to(features.dtype), mode="bilinear", align_corners=False)
    samples = samples.reshape(N, C, R, P * s, P * s).transpose(1, 2)  # (N, R, C, P*s, P*s)
    return F.avg_pool2d(samples.reshape(N * R, C, P * s, P * s), s).reshape(N, R, C, P, P)


def boxes_from_points(
    points: Tensor,
    groups: Sequence[Sequence[int]],
    pads: Tensor,
    *,
    scale: Tensor,
    image_size: tuple[int, int],
    min_size: Tensor | float = 0.0,
) -> Tensor:
    """Axis-aligned box around each group of points, padded by multiples of a per-image length.

    Args:
        points: keypoints in input-pixel coordinates (x, y), shape (N, K, 2).
        groups: for each of the R boxes, the indices of the points it must enclose.
        pads: (left, top, right, bottom) padding of each box in units of ``scale``, shape (R, 4).
        scale: per-image length unit (e.g. inter-ocular distance), shape (N,).
        image_size: (H, W); boxes are clamped to the image.
        min_size: smallest box side in units of ``scale``, a float or one per box, shape (R,);
            smaller boxes grow around their centre.

    Returns:
        Tensor, shape = (N, R, 4) of (x0, y0, x1, y1).
    """
    N, K, _ = points.shape
    H, W = image_size
    boxes = []
    for idx in groups:
        p = points[:, list(idx)]  # (N, k, 2)
        boxes.append(torch.cat((p.amin(dim=1), p.amax(dim=1)), dim=-1))  # (N, 4)
    boxes = torch.stack(boxes, dim=1)  # (N, R, 4)
    unit = scale[:, None, None]  # (N, 1, 1)
    sign = boxes.new_tensor([-1.0, -1.0, 1.0, 1.0])
    boxes = boxes + sign * pads.to(boxes) * unit
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2  # (N, R, 2)
    min_half = torch.as_tensor(min_size).to(boxes).reshape(-1, 1) * unit / 2  # (N, R or 1, 1)
    half = torch.maximum((boxes[..., 2:] - boxes[..., :2]) / 2, min_half)  # (N, R, 2)
    boxes = torch.cat((centre - half, centre + half), dim=-1)
    limit = boxes.new_tensor([W, H, W, H])
    return torch.minimum(boxes.clamp(min=0), limit)
