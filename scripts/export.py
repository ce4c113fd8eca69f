"""Exports a trained checkpoint as a SavedModel for TF Serving.

  python scripts/export.py --config configs/X.gin --checkpoint runs/X [--output saved_models/X]

Writes <output>/<version>/ (next free version number) with the signatures `serving_default`
(uint8 images) and `serving_encoded` (JPEG / PNG bytes) in the TF Object Detection API layout
(with --tta also `serving_tta`: the multi-scale + flip test), and prints the path.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfdet import cli  # noqa: E402

cli.define_config_flags(config_help="the gin config the checkpoint was trained with (default: "
                        "the checkpoint folder's config.gin, as convert_weights.py writes)")
flags.DEFINE_integer("untrained_num_classes", None, "no checkpoint: export freshly initialised "
                     "weights for this many classes (category ids 1..N), for speed measurements")
flags.DEFINE_string("output", None, "export base folder (default saved_models/<config name>)")
flags.DEFINE_bool("tta", False, "also export the serving_tta signature: the multi-scale + flip "
                  "test with box voting (tfdet.tta; keep-aspect rows)")
flags.DEFINE_bool("fold_norms", True, "fold BatchNorm / AffineChannel into the convs before "
                  "them (tfdet.export.fold_norms): the same detections, fused conv kernels")
flags.DEFINE_bool("freeze_weights", True, "store the weights as graph constants of one traced "
                  "detector (oneDNN then reorders each conv kernel once, not per call); "
                  "--nofreeze_weights keeps them variables")
flags.DEFINE_list("tta_scales", None, "shorter sides for serving_tta (default: the zoo's "
                  "400..1200)")


def main(_):
    from tfdet.export import export_saved_model, next_version_dir, untrained_biases
    from tfdet.training import restore_run

    f = flags.FLAGS
    config, exp = cli.experiment_from_flags(f)
    if f.checkpoint:
        model, _, info = restore_run(exp, f.checkpoint)
    elif f.untrained_num_classes:
        n = f.untrained_num_classes
        info = {"category_ids": list(range(1, n + 1)), "class_names": None}
        model = exp.build_model(n)
        # As trained weights would: with all-zero biases the frozen graph's convs lose their
        # fused ReLU (tfdet.export.saved_model.untrained_biases).
        untrained_biases(model)
        print("exporting untrained weights: for speed measurements only")
    else:
        raise SystemExit("give --checkpoint (or --untrained_num_classes for a speed test)")
    base = f.output or os.path.join("saved_models",
                                    os.path.splitext(os.path.basename(config))[0])
    tta = None
    if f.tta or exp.model.tta:
        try:
            tta = exp.tta(model, [int(s) for s in f.tta_scales] if f.tta_scales else None)
        except ValueError as err:
            raise SystemExit(f"error: --tta: {err}") from None
    path = export_saved_model(model, next_version_dir(base), info["category_ids"],
                              info["class_names"], transform=exp.eval_transform(),
                              canvas=exp.serving_canvas(), size_divisor=exp.data.size_divisor,
                              tta=tta, fold_norms=f.fold_norms,
                              freeze_weights=f.freeze_weights)
    print(f"SavedModel: {os.path.abspath(path)}")


if __name__ == "__main__":
    app.run(main)
