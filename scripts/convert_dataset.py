"""Writes TFRecord shards (TF Object Detection API layout) from any data-set spec.

  python scripts/convert_dataset.py --data coco:ANN.json:IMAGES --output data/coco_train \
      --num_shards 32
Reads the data with the same checks as training (bad files skipped and counted), then writes
<output>-0000i-of-0000n.tfrecord and <output>.classes.json. Train on them with
--train_data "tfrecord:<output>-*.tfrecord".
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfdet import data  # noqa: E402

FLAGS = flags.DEFINE_string("data", None, "data spec, e.g. coco:ANN.json[:IMAGE_DIR]")
flags.DEFINE_string("output", None, "output prefix of the shards")
flags.DEFINE_integer("num_shards", 1, "number of shards")
flags.DEFINE_bool("keep_empty", False, "keep images without boxes")
flags.mark_flags_as_required(["data", "output"])


def main(_):
    f = flags.FLAGS
    dataset = data.load_dataset(f.data, keep_empty=f.keep_empty)
    print(dataset.skipped.summary())
    paths = data.write_tfrecords(dataset, f.output, f.num_shards)
    boxes = sum(e.num_boxes for e in dataset.examples)
    print(f"wrote {len(dataset)} images, {boxes} boxes, {dataset.num_classes} classes to "
          f"{len(paths)} shards: {f.output}-*.tfrecord")


if __name__ == "__main__":
    app.run(main)
