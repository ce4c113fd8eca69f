"""Converts PaddleDetection weights into a tfdet run folder.

  python scripts/convert_weights.py --paddle_config faster_rcnn_r50_fpn_1x_coco \\
      --weights MODEL.pdparams --output runs/converted [--num_classes N --class_names FILE]
  python scripts/convert_weights.py --static_row faster_rcnn_r50_fpn_1x \\
      --weights faster_rcnn_r50_fpn_1x.tar --output runs/converted

--paddle_config: ppdet 2.x weights (.pdparams) and the ppdet config they were trained with;
--static_row: the static-graph zoo's weights (its .tar, the unpacked folder, or a fluid.save
.pdparams) and the tfdet zoo row of the same name. The folder holds a checkpoint, run.json and
config.gin: `eval.py --checkpoint DIR`, `export.py --checkpoint DIR`, `train.py --checkpoint
DIR` (fine-tuning) and `tfdet.models.load(DIR)` take it. Nothing is written unless every
tensor fits.
"""
from absl import app, flags

flags.DEFINE_string("paddle_config", None, "the ppdet 2.x config the weights were trained with")
flags.DEFINE_string("static_row", None, "the zoo row of static-graph zoo weights")
flags.DEFINE_string("weights", None, "the .pdparams file (or the static zoo's .tar / folder)",
                    required=True)
flags.DEFINE_string("output", None, "a new folder for the tfdet checkpoint", required=True)
flags.DEFINE_integer("num_classes", None, "classes of custom-data weights (checked)")
flags.DEFINE_string("class_names", None, "file with one class name per line (custom data)")


def main(_):
    from tfdet.convert import (ConversionError, WeightFileError, convert_paddle_checkpoint,
                               convert_static_checkpoint)
    f = flags.FLAGS
    if (f.paddle_config is None) == (f.static_row is None):
        raise SystemExit("error: give one of --paddle_config (ppdet 2.x weights) or "
                         "--static_row (static-graph zoo weights)")
    names = None
    if f.class_names:
        with open(f.class_names, encoding="utf-8") as fh:
            names = [line.strip() for line in fh if line.strip()]
    try:
        if f.static_row:
            prefix = convert_static_checkpoint(f.static_row, f.weights, f.output,
                                               f.num_classes, names)
        else:
            prefix = convert_paddle_checkpoint(f.paddle_config, f.weights, f.output,
                                               f.num_classes, names)
    except (ConversionError, WeightFileError, FileExistsError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {prefix} (config {f.output}/config.gin)")


if __name__ == "__main__":
    app.run(main)
