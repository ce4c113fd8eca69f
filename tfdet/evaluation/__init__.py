"""Evaluation: COCO box / mask AP (pycocotools), Pascal VOC mAP and WIDER FACE AP."""
from tfdet.evaluation.coco import (METRIC_NAMES, CocoEvaluator, coco_from_dict, format_table,
                                   score_coco)
from tfdet.evaluation.voc import VocEvaluator, average_precision
from tfdet.evaluation.widerface import WiderFaceEvaluator, read_wider_face_mat, wider_face_ap
from tfdet.evaluation.runner import (
    compiled_predictor,
    tta_predictor,
    evaluate_detector,
    evaluator_for,
    evaluate_saved_model,
    headline,
    to_original_pixels,
)
