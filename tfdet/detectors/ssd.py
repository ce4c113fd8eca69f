"""SSD (Liu et al. 2016): VGG16 (conv4_3 with L2Norm, fc7) or MobileNetV1 (C4, C5), extra
layers, multibox heads over fixed prior boxes, softmax classification.

`model(images)` takes normalised square images [B, S, S, 3] (S = image_size; models with
`any_input_size`, the face rows, also [B, H, W, 3] of any size) and returns
the detection dict: boxes [B, max_detections, 4] xyxy in input pixels, scores, classes int32
(contiguous 0..K-1), num_detections int32. `compute_losses(batch)` returns the multibox loss
(smooth-L1 on positives + softmax CE on positives and mined negatives, over the positive
count). Defaults follow PaddleDetection's ssd_vgg16_300 (REFERENCE.md).
"""
import keras
import tensorflow as tf

from tfdet import ops
from tfdet.backbones import blazenet, faceboxnet, mobilenet_v1, vgg16
from tfdet.detectors.ground_truth import ground_truth
from tfdet.detectors.dense import DenseDetector
from tfdet.heads import SSDHead
from tfdet.layers import L2Normalization
from tfdet.losses import hard_negatives, positive_count, smooth_l1_loss
from tfdet.necks import blazeface_neck, ssd_extra_layers
from tfdet.registry import POSTPROCESSORS, DETECTORS, SSD_BACKBONES

VGG16_300_EXTRAS = ((256, 512, 1, 2, 3), (128, 256, 1, 2, 3), (128, 256, 0, 1, 3),
                    (128, 256, 0, 1, 3))


@DETECTORS.register("ssd")
@keras.saving.register_keras_serializable("tfdet")
class SSD(DenseDetector):
    """SSD; see the module docstring. num_classes excludes the background.

    backbone: a name in tfdet.registry.SSD_BACKBONES: 'vgg16' (conv4_3 L2-normalised with a learned scale, fc7, then `extras` with
    biases and ReLU), 'mobilenet_v1' (C4, C5, then `extras` with `norm`) or 'blazenet'
    (BlazeFace: BlazeNet's stride-8 and stride-16 maps, tfdet.backbones.blazenet, with
    `backbone_settings` as its keyword arguments; no extras; `neck` 'fpn_ssh', 'only_fpn' or
    'only_ssh': BlazeFace-FPN-SSH's neck, tfdet.necks.blazeface) or 'faceboxnet' (FaceBoxes:
    tfdet.backbones.faceboxnet's maps, `backbone_settings` its keyword arguments, e.g. lite).
    densities: FaceBoxes' anchor densification: one density per min size of each map, the
    priors then Paddle's density_prior_box (tfdet.ops.density_priors; max sizes, aspect
    ratios and flip unused). A map's min_sizes entry may list
    several sizes (BlazeFace's 16 and 24), each with the map's aspect ratios. Prior sizes are
    in pixels of `base_size` and scale with image_size / base_size; base_size None: they are
    input pixels at every image_size (BlazeFace: steps 8 / 16 are its maps' strides, and its
    prior sizes are face sizes, as ppdet evaluates at any size). extra_activation: 'relu'
    or 'relu6' after the MobileNet extras' norms (ppdet 2.x uses ReLU6). clip_boxes: clip the
    decoded boxes to the image before NMS (ppdet 2.x clips only its final boxes). nms: the
    registered post-processor ('hard' per-class NMS; 'blend', BlazeFace's box blending).
    backbone_lr_mult: the learning-rate factor of the backbone's (and a face neck's) conv
    kernels in training (lr_multipliers; the face rows' 0.1, Paddle's conv_lr).
    """

    def __init__(self, num_classes=80, backbone="vgg16", image_size=300, base_size=300,
                 extras=VGG16_300_EXTRAS, l2norm_scale=20.0, norm="bn", width=1.0,
                 min_sizes=(30, 60, 111, 162, 213, 264), max_sizes=(60, 111, 162, 213, 264, 315),
                 aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)),
                 steps=(8, 16, 32, 64, 100, 300), offset=0.5, flip=True, clip=False,
                 min_max_order=False, head_kernel=3, positive_iou=0.5, neg_pos_ratio=3.0,
                 box_weights=(10.0, 10.0, 5.0, 5.0), score_threshold=0.01, nms_iou=0.45,
                 pre_nms_top_k=400, max_detections=200, extra_activation="relu",
                 clip_boxes=True, backbone_settings=None, densities=None, neck=None,
                 nms="hard", backbone_lr_mult=1.0, **kwargs):
        super().__init__(**kwargs)
        config = {k: v for k, v in locals().items() if k not in ("self", "kwargs", "__class__")}
        for key in ("extras", "min_sizes", "max_sizes", "aspect_ratios", "steps",
                    "box_weights", "backbone_settings", "densities"):
            config[key] = _freeze(config[key])
        self.config = config
        self.postprocessor = POSTPROCESSORS.get(nms)(config)
        self.matcher = ops.ArgmaxMatcher(positive_iou, allow_low_quality=True)
        self.coder = ops.BoxCoder(box_weights)
        self.num_classes = num_classes
        body_input, features = SSD_BACKBONES.get(backbone)(config)
        # A backbone built for any input size (the face rows') with priors in input pixels
        # (base_size None) and a step per map detects at any image size: the priors are laid
        # out on each input's maps (priors_for).
        self.any_input_size = bool(body_input.shape[1] is None and not base_size and steps
                                   and all(steps))
        if len(features) != len(min_sizes):
            raise ValueError(f"{len(features)} feature maps but {len(min_sizes)} prior sizes")
        if any(f.shape[1] is None for f in features) and not (steps and all(steps)):
            raise ValueError(f"SSD backbone {backbone!r} makes maps of any size: give a step "
                             f"per map (steps={steps!r})")
        sizes = [int(f.shape[1]) if f.shape[1] is not None else _cells(image_size, s)
                 for f, s in zip(features, steps or [None] * len(features))]
        scale = image_size / base_size if base_size else 1.0
        def scaled(size):  # a number, a map's several sizes, or None / ()
            if isinstance(size, (list, tuple)):
                return [v * scale for v in size]
            return size * scale if size else None

        steps = [s * scale if s else image_size / n for s, n in
                 zip(steps or [None] * len(sizes), sizes)]
        if densities:
            self.prior_cells = ops.density_cells([scaled(m) for m in min_sizes], densities,
                                                 steps)
            per_cell = [ops.density_priors_per_cell(d) for d in densities]
        else:
            self.prior_cells = ops.ssd_cells([scaled(m) for m in min_sizes],
                                             [scaled(m) for m in max_sizes], aspect_ratios,
                                             flip, min_max_order)
            per_cell = [ops.priors_per_cell(r, top, flip, bottom)
                        for r, top, bottom in zip(aspect_ratios, max_sizes, min_sizes)]
        self.prior_steps = tuple(steps)
        self.feature_sizes = tuple(sizes)
        self.priors = self.priors_for(image_size, image_size)
        self.head = SSDHead(num_classes, per_cell, head_kernel, name="head")
        logits, deltas = self.head(features)
        self.network = keras.Model(body_input, [logits, deltas], name="ssd_network")

    def lr_multipliers(self):
        """[(variable, learning-rate factor)]: backbone_lr_mult for the conv kernels of the
        layers feeding the heads (every network layer but the head: backbone, extras or
        neck; empty when it is 1)."""
        factor = self.config["backbone_lr_mult"]
        if factor == 1.0:
            return []
        convs = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
        return [(layer.kernel, factor) for layer in self.network.layers
                if layer is not self.head and isinstance(layer, convs)]

    @property
    def fixed_input_size(self):
        """The square side SSD is built, trained and served at; models with any_input_size
        also detect at other sizes (each input's own priors)."""
        return self.config["image_size"]

    def priors_for(self, height, width):
        """The priors [N, 4] float32 xyxy of an input of height x width (ints, or scalar int
        tensors for a model with any_input_size): each map's cells at its step, clipped to
        the input where Paddle clips (the `clip` option; density priors always). At other
        sizes than image_size a map has ceil(side / step) cells a side, as a backbone with
        'same' padding makes them."""
        c = self.config
        if isinstance(height, int) and isinstance(width, int) and (
                height, width) == (c["image_size"],) * 2:
            heights = widths = self.feature_sizes
        elif not self.any_input_size:
            raise ValueError(f"{self.name} detects at {c['image_size']} x {c['image_size']} "
                             f"only, got {height} x {width}")
        else:
            heights = [_cells(height, s) for s in self.prior_steps]
            widths = [_cells(width, s) for s in self.prior_steps]
        clip = (height, width) if c["densities"] or c["clip"] else None
        return ops.grid_priors(self.prior_cells, self.prior_steps, heights, widths,
                               c["offset"], clip)

    @property
    def num_priors(self):
        return int(self.priors.shape[0])

    # -- inference ---------------------------------------------------------------------------
    def postprocess(self, images, logits, deltas):
        """Softmax, decoding against the priors, per-class top-k before NMS, per-class NMS,
        the best max_detections over all classes."""
        c = self.config
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        priors = self.priors
        if self.any_input_size and images.shape[1:3] != (c["image_size"],) * 2:
            priors = self.priors_for(height, width)
            tf.debugging.assert_equal(
                tf.shape(priors)[0], tf.shape(deltas)[1],
                message=f"{self.name}: the network's maps differ from ceil(side / step) "
                        f"(steps {self.prior_steps})")
        probs = tf.nn.softmax(tf.cast(logits, tf.float32))[..., 1:]  # [B, N, K]
        boxes = self.coder.decode(tf.cast(deltas, tf.float32), priors[None])
        if c["clip_boxes"]:
            boxes = ops.clip_boxes(boxes, height, width)
        return self.multiclass_nms(boxes, probs)

    # -- training ----------------------------------------------------------------------------
    def compute_losses(self, batch, training=True):
        """Multibox loss: each ground truth's best prior and every prior at IoU >= 0.5 are
        positive; the rest negative, of which the neg_pos_ratio x positives with the highest
        CE are trained (hard negative mining). Smooth-L1 (beta 1) on the positives' encoded
        boxes, softmax CE on positives and mined negatives, both divided by the positive count
        (its mean over replicas). Crowd boxes and padding never match."""
        c = self.config
        gt = ground_truth(batch)
        boxes, valid = gt["boxes"], gt["valid"]
        logits, deltas = self.raw_outputs(batch["images"], training=training)
        logits = tf.cast(logits, tf.float32)
        deltas = tf.cast(deltas, tf.float32)
        matched, labels = self.matcher(self.priors[None], boxes, valid)
        positive = labels == ops.POSITIVE
        negative = labels == ops.NEGATIVE
        classes = tf.where(positive,
                           tf.gather(gt["classes"], matched, batch_dims=1) + 1,
                           0)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=classes, logits=logits)
        trained = positive | hard_negatives(ce, positive, negative, c["neg_pos_ratio"])
        positive_f = tf.cast(positive, tf.float32)
        num_positive = positive_count(positive)
        targets = self.coder.encode(tf.gather(boxes, matched, batch_dims=1), self.priors[None])
        losses = {
            "class_loss": tf.reduce_sum(ce * tf.cast(trained, tf.float32)) / num_positive,
            "box_loss": tf.reduce_sum(smooth_l1_loss(deltas, targets, 1.0)
                                      * positive_f[..., None]) / num_positive,
        }
        losses["total_loss"] = losses["class_loss"] + losses["box_loss"]
        return losses

# -- backbones: config -> (input, the maps the heads read) --------------------------------------
@SSD_BACKBONES.register("vgg16")
def _vgg16(c):
    """conv4_3 with L2Norm (a learned scale), fc7, then the extras with biases and ReLU."""
    body = vgg16(c["image_size"])
    conv4_3, fc7 = body.outputs
    features = [L2Normalization(c["l2norm_scale"], name="conv4_3_norm")(conv4_3), fc7]
    return body.input, features + ssd_extra_layers(fc7, c["extras"])


@SSD_BACKBONES.register("mobilenet_v1")
def _mobilenet_v1(c):
    """MobileNetV1's C4 and C5, then the extras with `norm` and `extra_activation`."""
    body = mobilenet_v1(c["width"], c["norm"], c["image_size"])
    features = list(body.outputs[1:])
    return body.input, features + ssd_extra_layers(features[-1], c["extras"], norm=c["norm"],
                                                   activation=c["extra_activation"])


@SSD_BACKBONES.register("blazenet")
def _blazenet(c):
    """BlazeFace: BlazeNet's two maps, through `neck` if set, then any extras."""
    body = blazenet(**dict(c["backbone_settings"] or {}), norm=c["norm"],
                    input_size=None)
    features = list(body.outputs)
    if c["neck"]:
        features = blazeface_neck(features, c["neck"], c["norm"])
    if c["extras"]:
        features += ssd_extra_layers(features[-1], c["extras"], norm=c["norm"])
    return body.input, features


@SSD_BACKBONES.register("faceboxnet")
def _faceboxnet(c):
    """FaceBoxes: FaceBoxNet's two or three maps."""
    body = faceboxnet(**dict(c["backbone_settings"] or {}), norm=c["norm"],
                      input_size=None)
    return body.input, list(body.outputs)


def _cells(side, step):
    """A map's cells along a side of `side` input pixels (an int or int tensor): ceil(side /
    step), as convs and pools with 'same' padding make them."""
    return (side + int(step) - 1) // int(step)


def _freeze(value):
    """Nested lists -> nested tuples (hashable, gin- and JSON-friendly)."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value
