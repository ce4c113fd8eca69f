"""YOLOv3's head (Redmon & Farhadi 2018): per pyramid level a 1x1 conv to A x (5 + K) raw
outputs per cell (x, y, w, h, objectness, K class logits for each of the level's A anchors)."""
import math

import keras


def yolo_head(features, anchor_masks, num_classes, objectness_prior=0.01, name="output"):
    """features: the neck's maps, coarse (stride 32) to fine; anchor_masks: the anchors of
    each level. Returns [B, H_l, W_l, A_l * (5 + K)] per level (layers `{name}{i}`).

    Objectness biases start at log(p / (1 - p)) for p = objectness_prior, the rest at 0: every
    prediction first says 'no object' with probability 1 - p, so the thousands of negatives do
    not swamp the first steps (as RetinaNet's prior); Paddle starts at 0.5."""
    p = objectness_prior
    per_anchor = [0.0] * 4 + [math.log(p / (1 - p))] + [0.0] * num_classes
    return [keras.layers.Conv2D(len(mask) * (5 + num_classes), 1, name=f"{name}{i}",
                                bias_initializer=keras.initializers.Constant(
                                    per_anchor * len(mask)))(x)
            for i, (x, mask) in enumerate(zip(features, anchor_masks))]
