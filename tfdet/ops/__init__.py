"""Pure tensor functions without weights: boxes, anchors, matching / sampling, NMS."""
from tfdet.ops.anchors import (AnchorGenerator, cell_anchors, rcnn_anchor_generator,
                               retinanet_anchor_generator)
from tfdet.ops.boxes import (
    box_area,
    BoxCoder,
    box_iou,
    clip_boxes,
    clip_limits,
    complete_box_iou,
    convert_format,
    decode_boxes,
    denormalize_boxes,
    distance_box_iou,
    elementwise_box_iou,
    encode_boxes,
    generalized_box_iou,
    normalize_boxes,
    valid_boxes_mask,
)
from tfdet.ops.matching import (IGNORE, NEGATIVE, POSITIVE, ArgmaxMatcher, BalancedSampler,
                                argmax_match, sample_balanced)
from tfdet.ops.nms import (
    MultiClassNMS,
    MultiClassSoftNMS,
    MultiClassWeightedNMS,
    batched_multiclass_weighted_nms,
    batched_labeled_nms,
    batched_multiclass_nms,
    batched_nms,
    multiclass_nms,
    nms,
    batched_multiclass_soft_nms,
    soft_nms,
)
from tfdet.ops.deform_conv import deform_conv2d, deform_conv_output_size
from tfdet.ops.roi_align import RoIPooler, multilevel_roi_align, roi_align, roi_levels
from tfdet.ops.masks import mask_targets, paste_masks
from tfdet.ops.priors import (density_cells, density_priors, density_priors_per_cell,
                              expand_aspect_ratios, grid_priors, priors_per_cell, ssd_cells,
                              ssd_priors)
