"""COCO box AP (and mask AP for Mask R-CNN), or VOC mAP for configs with
`DataConfig.metric = 'voc'`, of a checkpoint or of an exported SavedModel.

  python scripts/eval.py --config configs/X.gin --checkpoint runs/X [--data SPEC]
  python scripts/eval.py --saved_model saved_models/X/1 --data SPEC [--limit N]
  python scripts/eval.py --score_results RESULTS.json --data coco:ANN.json --iou_type bbox|segm
      [--json OUT.json]     # scores an existing results file; needs no images
The SavedModel path feeds each image's file bytes to `serving_encoded`, as a client would.
"""
import dataclasses
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfdet import cli  # noqa: E402

cli.define_config_flags(config_help="gin config (with --checkpoint; default: the checkpoint "
                        "folder's config.gin)")
flags.DEFINE_string("saved_model", None, "an exported SavedModel folder instead of a checkpoint")
flags.DEFINE_string("data", None, "data spec (default: the config's eval data)")
flags.DEFINE_integer("batch_size", 1, "images per batch (checkpoint path)")
flags.DEFINE_integer("limit", None, "score only the first N images (both paths; the output "
                     "names the count; overrides DataConfig.eval_limit)")
flags.DEFINE_string("results", None, "write the COCO results JSON here")
flags.DEFINE_string("score_results", None,
                    "score this COCO results JSON against --data coco:ANN.json (no images "
                    "needed) and print pycocotools' summary")
flags.DEFINE_enum("iou_type", "bbox", ["bbox", "segm"], "what --score_results scores")
flags.DEFINE_string("json", None, "write the metrics here as JSON")
flags.DEFINE_string("visualize", None, "write ground truth | detections PNGs of the first "
                    "--visualize_count images into this folder")
flags.DEFINE_integer("visualize_count", 16, "images drawn by --visualize")
flags.DEFINE_float("visualize_score", 0.3, "the lowest score --visualize draws")
flags.DEFINE_bool("tta", False, "multi-scale + flip test with box voting (tfdet.tta; checkpoint "
                  "path, one image at a time; on by default for configs with "
                  "ModelConfig.tta = True)")
flags.DEFINE_list("tta_scales", None, "shorter sides for --tta (default: the zoo's 400..1200)")
flags.DEFINE_enum("face_test", None, ["square", "original", "multi_scale"],
                  "face rows (checkpoint path): 'original' runs each image at its own size "
                  "(ppdet's face protocol), 'multi_scale' ppdet's face_eval.py --multi_scale "
                  "(several scales, a flip and box voting), 'square' the square eval resize "
                  "(default: DataConfig.face_test)")


def score_results_file(results_path, data_spec, iou_type):
    """pycocotools' numbers for a results file against a COCO annotation file, through the
    scoring function that every tfdet evaluation uses. Returns (stats, printed summary)."""
    from tfdet.data.coco import load_coco_json
    from tfdet.evaluation.coco import load_results, score_coco

    kind, _, rest = data_spec.partition(":")
    if kind != "coco" or not rest:
        raise SystemExit(f"--score_results needs --data coco:ANNOTATIONS.json, got {data_spec!r}")
    ground_truth = load_coco_json(rest.split(":")[0])
    results = load_results(results_path, ground_truth, iou_type)
    if not results:
        raise SystemExit(f"{results_path}: no detections to score")
    return score_coco(ground_truth, results, iou_type)


def main(_):
    from tfdet.data import load_dataset
    from tfdet.evaluation import evaluate_detector, evaluate_saved_model, headline
    from tfdet.training import read_run_info, resolve_checkpoint, restore_run

    f = flags.FLAGS
    if f.score_results:
        from tfdet.data.validate import AnnotationError
        from tfdet.evaluation.coco import METRIC_NAMES, ResultsError

        if not f.data:
            raise SystemExit("--score_results needs --data coco:ANNOTATIONS.json")
        try:
            stats, printed = score_results_file(f.score_results, f.data, f.iou_type)
        except (AnnotationError, ResultsError) as err:
            raise SystemExit(f"error: {err}") from None
        print(printed, end="")
        report = {"stats": stats, "metrics": dict(zip(METRIC_NAMES, stats)),
                  "iou_type": f.iou_type, "results": f.score_results, "data": f.data}
        if f.json:
            with open(f.json, "w", encoding="utf-8") as out:
                json.dump(report, out, indent=1)
        return
    if f.saved_model:
        if f.tta:
            raise SystemExit("--tta runs on a checkpoint; a SavedModel exported with --tta "
                             "serves it as the serving_tta signature")
        if not f.data:
            raise SystemExit("--saved_model needs --data SPEC")
        dataset = load_dataset(f.data, keep_empty=True)
        if f.limit:
            dataset = dataclasses.replace(dataset, examples=dataset.examples[:f.limit])
        metrics, evaluator = evaluate_saved_model(f.saved_model, dataset)
        source = f.saved_model
    else:
        if not f.checkpoint:
            raise SystemExit("give --config and --checkpoint, or --saved_model and --data")
        _, exp = cli.experiment_from_flags(f)
        checkpoint = resolve_checkpoint(f.checkpoint)
        info = read_run_info(checkpoint)
        try:
            dataset = exp.dataset(f.data or exp.data.eval, f.limit or exp.data.eval_limit,
                                  evaluation=True)
        except FileNotFoundError as err:  # the data set is not where the config says
            raise SystemExit(f"error: {err}") from None
        if [int(c) for c in dataset.category_ids] != info["category_ids"]:
            raise SystemExit(f"the data's categories {dataset.category_ids} differ from the "
                             f"checkpoint's {info['category_ids']} ({checkpoint})")
        model, _, _ = restore_run(exp, checkpoint, info)  # built once the data matches
        scales = [int(s) for s in f.tta_scales] if f.tta_scales else None
        try:
            predict, pipeline = exp.evaluation_inputs(
                model, dataset, f.batch_size, tta=f.tta or None, tta_scales=scales,
                face_test=f.face_test)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        metrics, evaluator = evaluate_detector(predict, pipeline, dataset,
                                               metric=exp.data.metric)
        source = checkpoint
    if f.results:
        if not hasattr(evaluator, "write_results"):
            raise SystemExit(f"--results writes COCO results; this config's metric is "
                             f"{exp.data.metric!r}")
        evaluator.write_results(f.results)
    if f.visualize:
        from tfdet.visualize import write_comparisons
        written = write_comparisons(dataset, evaluator.per_image(), f.visualize,
                                    f.visualize_count, f.visualize_score)
        print(f"{len(written)} ground truth | detections pictures in {f.visualize}")
    if f.json:
        with open(f.json, "w", encoding="utf-8") as out:
            json.dump(dict(metrics, source=source, images=len(dataset)), out, indent=1)
    print(json.dumps({"source": source, "images": len(dataset), **headline(metrics)}))


if __name__ == "__main__":
    app.run(main)
