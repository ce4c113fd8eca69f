"""Pictures: each kept detection is a box in its class's colour with a "name score" tag, boxes
under the threshold are not drawn, and class-agnostic NMS keeps one box per object."""
import numpy as np

from tfdet import visualize


def test_boxes_in_class_colours_with_labelled_tags_and_a_score_threshold():
    image = np.full((120, 160, 3), 255, np.uint8)
    boxes = [[20, 40, 80, 100], [100, 10, 150, 60], [5, 5, 15, 15]]
    drawn = visualize.draw_detections(image, boxes, [1, 2, 0], [0.9, 0.6, 0.1],
                                      ["cat", "dog", "bird"], score_threshold=0.5)
    colors = visualize.class_colors(3)
    assert len(set(colors)) == 3
    assert tuple(drawn[70, 20]) == colors[1]  # the left edge of the first box
    assert tuple(drawn[35, 150]) == colors[2]  # the right edge of the second
    assert (drawn[5:16, 5:16] == 255).all()  # score 0.1 < 0.5: not drawn
    tag = drawn[20:40, 20:60]  # above the first box: filled in its colour, with dark text
    assert (tag == colors[1]).all(axis=-1).mean() > 0.4
    assert (tag.max(axis=-1) < 60).any()
    assert (image == 255).all()  # the input is not modified


def test_class_agnostic_nms_keeps_one_box_per_object():
    boxes = np.array([[10, 10, 50, 50], [11, 11, 51, 50], [100, 100, 140, 150]], np.float32)
    keep = visualize.class_agnostic_nms(boxes, [0.8, 0.9, 0.5], iou_threshold=0.5)
    assert sorted(keep.tolist()) == [1, 2]


def test_side_by_side_puts_ground_truth_left_of_predictions():
    left = np.zeros((10, 20, 3), np.uint8)
    right = np.full((14, 12, 3), 7, np.uint8)
    both = visualize.side_by_side(left, right, gap=4)
    assert both.shape == (14, 36, 3)
    assert (both[:10, :20] == 0).all() and (both[:, 24:] == 7).all()
    assert (both[:, 20:24] == 255).all()


def test_both_evaluators_give_the_same_per_image_detections():
    """eval.py --visualize reads evaluator.per_image(): COCO and VOC agree on it."""
    from tfdet import data
    from tfdet.evaluation import CocoEvaluator
    from tfdet.evaluation.voc import VocEvaluator
    val = data.load_sample_dataset("val")
    ids = [ex.image_id for ex in val.examples[:2]]
    boxes = np.array([[[1, 2, 30, 40], [5, 5, 9, 9]], [[0, 0, 10, 10], [3, 4, 5, 6]]],
                     np.float32)
    scores = np.array([[0.9, 0.4], [0.8, 0.7]], np.float32)
    classes = np.array([[0, 2], [1, 1]])
    got = []
    for evaluator in (CocoEvaluator(val), VocEvaluator(val)):
        evaluator.add_detections(ids, boxes, scores, classes, [2, 1])
        got.append(evaluator.per_image())
    for per_image in got:
        assert set(per_image) == set(ids)
        order = np.argsort(-per_image[ids[0]][2])
        np.testing.assert_allclose(per_image[ids[0]][0][order], boxes[0], atol=1e-4)
        assert per_image[ids[0]][1][order].tolist() == [0, 2]
        np.testing.assert_allclose(per_image[ids[1]][2], [0.8])
