"""COCO box AP (and mask AP for Mask R-CNN), or VOC mAP for configs with
`DataConfig.metric = 'voc'`, of a checkpoint or of an exported SavedModel.

  python scripts/eval.py --config configs/X.gin --checkpoint runs/X [--data SPEC]
  python scripts/eval.py --saved_model saved_models/X/1 --data SPEC
The SavedModel path feeds each image's file bytes to `serving_encoded`, as a client would.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_string("config", None, "gin config (with --checkpoint)")
flags.DEFINE_multi_string("gin_bindings", [], "extra gin bindings")
flags.DEFINE_string("checkpoint", None, "checkpoint prefix or model_dir (its latest)")
flags.DEFINE_string("saved_model", None, "an exported SavedModel folder instead of a checkpoint")
flags.DEFINE_string("data", None, "data spec (default: the config's eval data)")
flags.DEFINE_integer("batch_size", 1, "images per batch (checkpoint path)")
flags.DEFINE_string("results", None, "write the COCO results JSON here")


def evaluate_saved_model(path, dataset):
    """Detections of a SavedModel's serving_encoded signature, scored with COCO metrics."""
    import numpy as np
    import tensorflow as tf
    import tqdm

    from tfdet.evaluation import CocoEvaluator
    from tfdet.evaluation.runner import coco_metrics, image_masks

    fn = tf.saved_model.load(path).signatures["serving_encoded"]
    evaluator = CocoEvaluator(dataset)
    with_masks = "detection_masks" in fn.structured_outputs
    to_class = {float(c): k for k, c in enumerate(dataset.category_ids)}
    for ex in tqdm.tqdm(dataset.examples, desc="evaluating", leave=False):
        out = fn(encoded_images=tf.io.read_file(ex.path)[None])
        n = int(out["num_detections"][0])
        y1, x1, y2, x2 = np.moveaxis(out["detection_boxes"][0, :n].numpy(), -1, 0)
        boxes = np.stack([x1 * ex.width, y1 * ex.height, x2 * ex.width, y2 * ex.height], -1)
        classes = [to_class[float(c)] for c in out["detection_classes"][0, :n].numpy()]
        masks = None
        if with_masks:
            masks = [image_masks(out["detection_masks"][0, :n], boxes, ex.height, ex.width)]
        evaluator.add_detections([ex.image_id], boxes[None], out["detection_scores"][:, :n],
                                 np.asarray(classes, np.int64).reshape(1, n), masks=masks)
    return coco_metrics(evaluator, with_masks), evaluator


def main(_):
    from tfdet.config import load_experiment
    from tfdet.data import load_dataset
    from tfdet.evaluation import compiled_predictor, evaluate_detector, headline
    from tfdet.training import read_run_info, resolve_checkpoint, restore_model

    f = flags.FLAGS
    if f.saved_model:
        if not f.data:
            raise SystemExit("--saved_model needs --data SPEC")
        metrics, evaluator = evaluate_saved_model(f.saved_model, load_dataset(f.data))
        source = f.saved_model
    else:
        if not (f.config and f.checkpoint):
            raise SystemExit("give --config and --checkpoint, or --saved_model and --data")
        exp = load_experiment(f.config, f.gin_bindings)
        checkpoint = resolve_checkpoint(f.checkpoint)
        info = read_run_info(checkpoint)
        try:
            dataset = exp.dataset(f.data or exp.data.eval)
        except FileNotFoundError as err:  # the data set is not where the config says
            raise SystemExit(f"error: {err}") from None
        if [int(c) for c in dataset.category_ids] != info["category_ids"]:
            raise SystemExit(f"the data's categories {dataset.category_ids} differ from the "
                             f"checkpoint's {info['category_ids']} ({checkpoint})")
        model = restore_model(exp.build_model(info["num_classes"]), checkpoint)
        metrics, evaluator = evaluate_detector(compiled_predictor(model),
                                               exp.eval_pipeline(dataset, f.batch_size),
                                               dataset, metric=exp.data.metric)
        source = checkpoint
    if f.results:
        if not hasattr(evaluator, "write_results"):
            raise SystemExit("--results writes COCO results; this config scores VOC mAP")
        evaluator.write_results(f.results)
    print(json.dumps({"source": source, **headline(metrics)}))


if __name__ == "__main__":
    app.run(main)
