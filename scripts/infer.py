"""Runs a SavedModel on one image and draws its detections.

  python scripts/infer.py --saved_model saved_models/X/1 --image IMG --output OUT.png \
      [--min_score 0.3] [--class_agnostic_nms]
Prints one line per detection (class, score, box in pixels) and writes a PNG with each box in
its class's colour, labelled with the class name and score (tfdet.visualize).
--class_agnostic_nms keeps one box where the model's per-class NMS kept one per class.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("saved_model", None, "SavedModel folder", required=True)
flags.DEFINE_string("image", None, "JPEG / PNG / BMP / GIF image", required=True)
flags.DEFINE_string("output", None, "PNG to write", required=True)
flags.DEFINE_float("min_score", 0.3, "draw detections at or above this score")
flags.DEFINE_bool("class_agnostic_nms", False,
                  "suppress overlapping boxes across classes (IoU > --nms_iou)")
flags.DEFINE_float("nms_iou", 0.5, "IoU threshold of --class_agnostic_nms")


def main(_):
    import numpy as np
    import tensorflow as tf

    from tfdet import visualize

    f = flags.FLAGS
    model = tf.saved_model.load(f.saved_model)
    encoded = tf.io.read_file(f.image)
    out = model.signatures["serving_encoded"](encoded_images=encoded[None])
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    h, w = int(image.shape[0]), int(image.shape[1])
    names = {}
    labels = os.path.join(f.saved_model, "assets.extra", "labels.json")
    if os.path.exists(labels):
        with open(labels) as fh:
            info = json.load(fh)
        names = dict(zip(info["category_ids"], info["class_names"]))
    n = int(out["num_detections"][0])
    scores = out["detection_scores"][0, :n].numpy()
    boxes = out["detection_boxes"][0, :n].numpy() * [h, w, h, w]  # yxyx, pixels
    boxes = boxes[:, [1, 0, 3, 2]]  # xyxy
    classes = out["detection_classes"][0, :n].numpy().astype(int)
    keep = np.flatnonzero(scores >= f.min_score)
    if f.class_agnostic_nms:
        keep = keep[visualize.class_agnostic_nms(boxes[keep], scores[keep], f.nms_iou)]
    for i in keep:
        x1, y1, x2, y2 = boxes[i]
        print(f"{names.get(classes[i], classes[i])}\t{scores[i]:.3f}\t"
              f"[{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]")
    ids = sorted(names) or sorted(set(classes.tolist()))
    index = {c: k for k, c in enumerate(ids)}  # category id -> colour slot
    drawn = visualize.draw_detections(
        image.numpy(), boxes[keep], [index.get(c, len(ids)) for c in classes[keep]],
        scores[keep], [names.get(c, c) for c in ids], num_classes=len(ids))
    tf.io.write_file(f.output, tf.io.encode_png(drawn))
    print(f"{len(keep)} detections >= {f.min_score} drawn into {f.output}")


if __name__ == "__main__":
    sys.exit(app.run(main))
