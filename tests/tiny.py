"""Tiny model configurations shared by the tests: a forward pass takes milliseconds on 2 CPU cores."""

# AGDTNet (learner_state): 4 frames of 32 × 32, ResNet widths 8-64, one 2-head encoder layer
TINY_AGDTNET = dict(
    num_frames=4,
    image_size=32,
    layers=(1, 1, 1, 1),
    widths=(8, 16, 32, 64),
    heads=2,
    mlp_dim=32,
    depth=1,
    reduction=4,
)
