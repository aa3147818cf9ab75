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

# teacher_expression: 3 frames of 64 × 64, ResNet base width 4, 4 × 4 RoIs
TINY_EXPRESSION = dict(
    layers=(1, 1, 1, 1),
    base_width=4,
    roi_size=4,
    roi_hidden=8,
    roi_channels=4,
    part_channels=4,
    lstm_channels=4,
    num_frames=3,
    image_size=64,
    num_classes=5,
)

# teacher_gesture: 3 frames of 64 × 64, ResNet base width 4, a 2 × 2 region grid, two attention layers
TINY_GESTURE = dict(
    layers=(1, 1, 1, 1),
    base_width=4,
    channels=8,
    region_grid=2,
    num_layers=2,
    head_hidden=8,
    num_frames=3,
    image_size=64,
    num_classes=5,
)

TINY = {"learner_state": TINY_AGDTNET, "teacher_expression": TINY_EXPRESSION, "teacher_gesture": TINY_GESTURE}
