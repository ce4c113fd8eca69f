"""Converts PaddleDetection 2.x weights (.pdparams) into a tfdet run folder.

  python scripts/convert_weights.py --paddle_config faster_rcnn_r50_fpn_1x_coco \\
      --weights MODEL.pdparams --output runs/converted [--num_classes N --class_names FILE]

The folder holds a checkpoint, run.json and config.gin: `eval.py --checkpoint DIR`,
`export.py --checkpoint DIR`, `train.py --checkpoint DIR` (fine-tuning) and
`tfdet.models.load(DIR)` take it. Nothing is written unless every tensor fits.
"""
from absl import app, flags

flags.DEFINE_string("paddle_config", None, "the ppdet config the weights were trained with",
                    required=True)
flags.DEFINE_string("weights", None, "the .pdparams file", required=True)
flags.DEFINE_string("output", None, "a new folder for the tfdet checkpoint", required=True)
flags.DEFINE_integer("num_classes", None, "classes of custom-data weights (checked)")
flags.DEFINE_string("class_names", None, "file with one class name per line (custom data)")


def main(_):
    from tfdet.convert import ConversionError, WeightFileError, convert_paddle_checkpoint
    f = flags.FLAGS
    names = None
    if f.class_names:
        with open(f.class_names, encoding="utf-8") as fh:
            names = [line.strip() for line in fh if line.strip()]
    try:
        prefix = convert_paddle_checkpoint(f.paddle_config, f.weights, f.output,
                                           f.num_classes, names)
    except (ConversionError, WeightFileError, FileExistsError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {prefix} (config {f.output}/config.gin)")


if __name__ == "__main__":
    app.run(main)
