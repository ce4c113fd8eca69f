"""Runs a SavedModel on one image and draws its detections.

  python scripts/infer.py --saved_model saved_models/X/1 --image IMG --output OUT.png
Prints one line per detection (class, score, box in pixels) and writes a PNG with the boxes.
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


def main(_):
    import tensorflow as tf

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
    keep = scores >= f.min_score
    boxes = out["detection_boxes"][0, :n].numpy()[keep]
    classes = out["detection_classes"][0, :n].numpy()[keep]
    for box, cls, score in zip(boxes, classes, scores[keep]):
        y1, x1, y2, x2 = box * [h, w, h, w]
        print(f"{names.get(int(cls), int(cls))}\t{score:.3f}\t"
              f"[{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]")
    drawn = tf.image.draw_bounding_boxes(tf.cast(image, tf.float32)[None] / 255.0,
                                         boxes[None], tf.constant([[1.0, 0.1, 0.1, 1.0]]))
    png = tf.io.encode_png(tf.cast(tf.round(drawn[0] * 255.0), tf.uint8))
    tf.io.write_file(f.output, png)
    print(f"{int(keep.sum())} detections >= {f.min_score} drawn into {f.output}")


if __name__ == "__main__":
    sys.exit(app.run(main))
