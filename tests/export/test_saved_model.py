"""The SavedModel: reloaded in a process that never imports tfdet, it gives the Keras model's
detections, in the TF Object Detection API layout, from both signatures."""
import functools
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfdet import data, models, ops
from tfdet.detectors import run_detector
from tfdet.export import export_saved_model
from tfdet.evaluation import to_original_pixels

SHORT, LONG, DIVISOR = 192, 256, 128

# Runs in a fresh interpreter with only TensorFlow: no tfdet on the path or in sys.modules.
CLIENT = r"""
import json, sys
import numpy as np
import tensorflow as tf
path, images = sys.argv[1], sys.argv[2:]
model = tf.saved_model.load(path)
assert not any(name.split(".")[0] == "tfdet" for name in sys.modules), "tfdet was imported"
out = {}
for i, image in enumerate(images):
    encoded = tf.io.read_file(image)
    r = model.signatures["serving_encoded"](encoded_images=encoded[None])
    out.update({f"{k}_{i}": v.numpy() for k, v in r.items()})
decoded = tf.io.decode_image(tf.io.read_file(images[0]), channels=3, expand_animations=False)
r = model.signatures["serving_default"](images=decoded[None])
out.update({f"{k}_uint8": v.numpy() for k, v in r.items()})
r = model.signatures["serving_encoded"](encoded_images=tf.stack([tf.io.read_file(p) for p in images]))
out.update({f"{k}_batch": v.numpy() for k, v in r.items()})
np.savez(sys.argv[1] + "/../client.npz", **out)
print(json.dumps({"signatures": sorted(model.signatures.keys())}))
"""


def _retinanet():
    model = models.get("retinanet_r50_fpn", num_classes=3, depth=18, norm="bn",
                       fpn_channels=32)
    # Prior 0.5 instead of 0.01, so an untrained model has detections to compare.
    bias = next(v for v in model.weights if "class_out" in v.path and v.name == "bias")
    bias.assign(tf.zeros_like(bias))
    return model


def _faster_rcnn():
    # Untrained, its softmax gives each class about 1/4: above the 0.05 threshold.
    return models.get("faster_rcnn_r50_fpn", num_classes=3, depth=18, norm="bn",
                      fpn_channels=32, fc_dim=64, test_pre_nms_top_k=200,
                      test_post_nms_top_k=100)


def _mask_rcnn_dcn():
    # The whole DCN row (DCNv2 in res3-res5) with random offset convs, so the served graph
    # samples between pixels (a new offset conv is zero: whole-pixel taps only).
    model = models.get("mask_rcnn_dcn_r50_fpn_1x", num_classes=3, depth=18, norm="bn",
                       fpn_channels=32, fc_dim=64, mask_conv_dim=16, test_pre_nms_top_k=200,
                       test_post_nms_top_k=100)
    offsets = [v for v in model.weights if "offset_kernel" in v.path]
    assert len(offsets) == 6  # R18: branch2b of each of 2 blocks in 3 stages (ppdet)
    for i, v in enumerate(offsets):
        v.assign(tf.random.stateless_normal(v.shape, [i, 5], stddev=0.02))
    return model


def _cascade_mask_rcnn():
    # The cascade graph with the most parts: three class-aware stages (each passing on its top
    # class's box), Paddle's soft-NMS (a while loop of stock ops) and the mask head.
    return models.get("cascade_mask_rcnn_r50_fpn", num_classes=3, depth=18, norm="bn",
                      fpn_channels=32, fc_dim=64, mask_conv_dim=16, test_pre_nms_top_k=200,
                      test_post_nms_top_k=100, class_aware=True, nms="soft",
                      score_threshold=0.01, max_detections=100)


def _cascade_rcnn_gn():
    # The other cascade graph: class-agnostic stages, GroupNorm in the FPN and the 4conv1fc
    # heads (the GN rows), hard NMS.
    return models.get("cascade_rcnn_r50_fpn_gn_2x", num_classes=3, depth=18, norm="bn",
                      fpn_channels=32, fc_dim=64, test_pre_nms_top_k=200,
                      test_post_nms_top_k=100)


def _ssd():
    model = models.get("ssd_mobilenet_v1_voc", num_classes=3, image_size=SSD_SIZE, width=0.25)
    # Background logit bias -2: an untrained model then scores its classes above 0.01.
    bias = model.head.class_convs[0].bias
    bias.assign(tf.tile(tf.constant([-2.0, 0, 0, 0]), [bias.shape[0] // 4]))
    return model


def _face(name, **settings):
    # BlazeFace: BlazeNet's 5x5 depthwise blocks, two prior sizes per cell on the stride-8 map;
    # BlazeFace-FPN-SSH: hard-swish, the FPN + SSH neck; FaceBoxes: CReLU, Inception blocks,
    # Paddle's padded max pool and densified priors. The background bias as SSD's.
    model = models.get(name, num_classes=3, image_size=SSD_SIZE, **settings)
    for conv in model.head.class_convs:
        conv.bias.assign(tf.tile(tf.constant([-2.0, 0, 0, 0]), [conv.bias.shape[0] // 4]))
    return model


def _yolov3():
    # Objectness prior 0.5 and untrained classes near 0.5: scores about 0.25 > 0.01.
    return models.get("yolov3_mobilenet_v1", num_classes=3, width=0.25, objectness_prior=0.5)


SSD_SIZE = 160
# model -> (builder, eval transform, canvas, size divisor)
MODELS = {
    "retinanet": (_retinanet, data.detection_transforms(False, SHORT, LONG), LONG, DIVISOR),
    "faster_rcnn": (_faster_rcnn, data.detection_transforms(False, SHORT, LONG), LONG,
                    DIVISOR),
    "mask_rcnn_dcn": (_mask_rcnn_dcn, data.detection_transforms(False, SHORT, LONG), LONG,
                      DIVISOR),
    "cascade_mask_rcnn": (_cascade_mask_rcnn, data.detection_transforms(False, SHORT, LONG),
                          LONG, DIVISOR),
    "cascade_rcnn_gn": (_cascade_rcnn_gn, data.detection_transforms(False, SHORT, LONG), LONG,
                        DIVISOR),
    "ssd": (_ssd, data.ssd_transforms(False, SSD_SIZE, (127.5,) * 3, (127.5,) * 3),
            SSD_SIZE, 1),
    **{name: (functools.partial(_face, name), data.ssd_transforms(
        False, SSD_SIZE, (123.0, 117.0, 104.0), (127.502231,) * 3), SSD_SIZE, 1)
       for name in ("blazeface", "blazeface_fpn_ssh", "faceboxes")},
    "yolov3": (_yolov3, data.ssd_transforms(False, 160), 160, 32),
}
# The other face editions (their own block lists and widths, the same ops): exported and
# served without tfdet only; BlazeFace-NAS-V2 with box blending (nms='blend').
EDITIONS = {
    name: (functools.partial(_face, name, **settings), *MODELS["blazeface"][1:])
    for name, settings in (("blazeface_lite", {}), ("blazeface_nas", {}),
                           ("blazeface_nas_v2", {"nms": "blend"}), ("faceboxes_lite", {}))}


def _export(spec, tmp_path_factory):
    import keras

    keras.utils.set_random_seed(1)
    build, transform, canvas, divisor = spec
    model = build()
    sample = data.load_sample_dataset("val")
    path = str(tmp_path_factory.mktemp("export") / "model" / "1")
    export_saved_model(model, path, sample.category_ids, sample.class_names,
                       transform=transform, canvas=canvas, size_divisor=divisor)
    return model, sample, path, transform, divisor


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request, tmp_path_factory):
    return _export(MODELS[request.param], tmp_path_factory)


@pytest.fixture(scope="module", params=sorted(EDITIONS))
def exported_edition(request, tmp_path_factory):
    return _export(EDITIONS[request.param], tmp_path_factory)


@functools.lru_cache(maxsize=1)
def _load(path):
    """The export loaded once for the tests that read it in this process (the last one only:
    the fixture's families come one after another)."""
    return tf.saved_model.load(path)


def _keras_reference(model, sample, n_images, transform, divisor):
    """Detections of the Keras model through the eval pipeline, as the export should give."""
    subset = data.DetectionDataset(sample.name, sample.examples[:n_images], sample.class_names,
                                   sample.category_ids, sample.skipped)
    refs = []
    for batch in data.input_pipeline(subset, transform, 1, training=False,
                                     size_divisor=divisor):
        # The export clips to each image's size before padding, as evaluation does.
        out = run_detector(model, batch["images"], tf.cast(batch["image_size"], tf.float32))
        h, w = (int(v) for v in batch["original_size"][0])
        boxes = to_original_pixels(out["boxes"], batch["scale"], batch["original_size"])[0]
        n = int(out["num_detections"][0])
        refs.append({"boxes": boxes[:n, [1, 0, 3, 2]] / [h, w, h, w],
                     "scores": out["scores"][0, :n].numpy(),
                     "classes": np.asarray(sample.category_ids)[out["classes"][0, :n].numpy()],
                     "masks": out["masks"][0, :n].numpy() if "masks" in out else None})
    return refs


def _assert_same_detections(ref, boxes, scores, classes, num, masks=None, top=20):
    assert int(num) == len(ref["scores"]) > 0
    for i in range(min(top, int(num))):
        # Match on (class, score): ties in NMS order may differ, values must not.
        j = np.flatnonzero((ref["classes"] == classes[i])
                           & (np.abs(ref["scores"] - scores[i]) < 1e-4))
        assert j.size, (i, scores[i], classes[i])
        error = np.abs(ref["boxes"][j] - boxes[i]).max(-1)
        assert np.min(error) < 2e-3
        if masks is not None:  # the per-box mask of that same detection
            np.testing.assert_allclose(masks[i], ref["masks"][j[np.argmin(error)]], atol=2e-3)
    assert (masks is None) == (ref["masks"] is None)


def test_saved_model_matches_keras_in_a_process_without_tfdet(exported, tmp_path):
    _check_without_tfdet(*exported, tmp_path)


def test_face_editions_match_keras_in_a_process_without_tfdet(exported_edition, tmp_path):
    model = exported_edition[0]
    if model.config["nms"] == "blend":
        assert isinstance(model.postprocessor, ops.MultiClassWeightedNMS)
    _check_without_tfdet(*exported_edition, tmp_path)


def _check_without_tfdet(model, sample, path, transform, divisor, tmp_path):
    """The SavedModel, loaded by a process that never imports tfdet, gives the Keras model's
    detections through the eval pipeline (float, encoded and uint8 inputs, batches)."""
    images = [ex.path for ex in sample.examples[:3]]
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", CLIENT, path, *images], capture_output=True,
                         text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["signatures"] == [
        "serving_default", "serving_encoded"]
    got = np.load(str(pathlib.Path(path).parent / "client.npz"))
    refs = _keras_reference(model, sample, 3, transform, divisor)
    for i, ref in enumerate(refs):
        assert got[f"detection_boxes_{i}"].shape == (1, model.config["max_detections"], 4)
        assert got[f"detection_classes_{i}"].dtype == np.float32
        _assert_same_detections(ref, got[f"detection_boxes_{i}"][0],
                                got[f"detection_scores_{i}"][0],
                                got[f"detection_classes_{i}"][0], got[f"num_detections_{i}"][0],
                                got[f"detection_masks_{i}"][0]
                                if f"detection_masks_{i}" in got else None)
        n = int(got[f"num_detections_{i}"][0])
        assert set(got[f"detection_classes_{i}"][0, :n]) <= set(map(float, sample.category_ids))
        assert not got[f"detection_boxes_{i}"][0, n:].any()  # padding rows are zero
    # uint8 input gives the same as encoded bytes of the same (lossless-decoded) image.
    np.testing.assert_allclose(got["detection_scores_uint8"], got["detection_scores_0"],
                               atol=1e-6)
    np.testing.assert_allclose(got["detection_boxes_uint8"], got["detection_boxes_0"],
                               atol=1e-6)
    # A batch of different sizes: one output row per image, boxes normalised.
    assert got["num_detections_batch"].shape == (3,)
    assert got["detection_boxes_batch"].min() >= 0 and got["detection_boxes_batch"].max() <= 1


def _png_claiming(width, height):
    import struct
    import zlib

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_serving_refuses_huge_images_before_decoding_and_takes_thin_ones(exported):
    model, sample, path, transform, divisor = exported
    loaded = _load(path)
    encoded = loaded.signatures["serving_encoded"]
    # Headers claiming 20000x20000 (PNG) and 9000x9000 (a real JPEG with its frame header
    # patched): refused from the header, with the size, before any decoding.
    jpeg = bytearray(tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy())
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = (9000).to_bytes(2, "big") * 2
    for bomb, size in ((_png_claiming(20000, 20000), r"\[20000\] \[20000\]"),
                       (bytes(jpeg), r"\[9000\] \[9000\]")):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=rf"image too large .*limit 40000000 pixels.*{size}"):
            encoded(encoded_images=tf.constant([bomb]))
    # A valid 1 x 5000 strip and a 5000 x 1 one are served (each side stays >= 1 pixel).
    for shape in ((1, 5000, 3), (5000, 1, 3)):
        strip = np.full(shape, 128, np.uint8)
        out = loaded.signatures["serving_default"](images=tf.constant(strip[None]))
        assert out["detection_boxes"].shape[0] == 1
        out = encoded(encoded_images=tf.constant([tf.io.encode_png(strip).numpy()]))
        assert out["detection_boxes"].shape[0] == 1


def test_tf_serving_protos_and_warmup_requests_round_trip_the_saved_model(exported):
    """scripts/serving_client.py's request and response protos, serialised as on the wire,
    carry the SavedModel's own inputs and outputs; export wrote warm-up requests for both
    signatures, and each runs."""
    from tensorflow_serving.apis import predict_pb2

    from tfdet.export import serving
    model, sample, path, transform, divisor = exported
    loaded = _load(path)
    files = [tf.io.read_file(ex.path).numpy() for ex in sample.examples[:2]]
    request = serving.predict_request(files, "det", "serving_encoded", version=1)
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert (request.model_spec.name, request.model_spec.version.value) == ("det", 1)
    signature = loaded.signatures[request.model_spec.signature_name]
    outputs = signature(**{k: tf.make_ndarray(v) for k, v in request.inputs.items()})
    response = predict_pb2.PredictResponse()
    for name, value in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
    parsed = serving.parse_predict_response(
        predict_pb2.PredictResponse.FromString(response.SerializeToString()))
    direct = loaded.signatures["serving_encoded"](encoded_images=tf.constant(files))
    assert set(parsed) == set(direct)
    for name, value in direct.items():
        np.testing.assert_array_equal(parsed[name], value.numpy())
    warmup = serving.read_warmup_requests(path)
    assert [r.model_spec.signature_name for r in warmup] == ["serving_encoded",
                                                            "serving_default"]
    for r in warmup:
        out = loaded.signatures[r.model_spec.signature_name](
            **{k: tf.make_ndarray(v) for k, v in r.inputs.items()})
        assert out["detection_boxes"].shape[0] == 1
