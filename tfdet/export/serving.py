"""TF Serving's request / response protos for tfdet's SavedModels (tensorflow-serving-api,
`pip install tensorflow-serving-api`, imported only here), and the warm-up requests that
export writes so that a server's first real request is not the slow one.

Signatures (tfdet.export.saved_model): `serving_encoded` takes `encoded_images`, a [B] string
tensor of JPEG / PNG / GIF / BMP bytes; `serving_default` takes `images`, uint8 [B, H, W, 3].
Both return detection_boxes [B, N, 4] (normalised y1, x1, y2, x2), detection_scores,
detection_classes (the data set's category ids, float32), num_detections (and
detection_masks for Mask R-CNN).
"""
import os

import numpy as np
import tensorflow as tf

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _apis():
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError as err:
        raise ImportError("TF Serving's protos need tensorflow-serving-api: "
                          "pip install tensorflow-serving-api") from err
    return predict_pb2, prediction_log_pb2


def predict_request(images, model_name="tfdet", signature="serving_encoded", version=None):
    """A PredictRequest for `signature`: images are encoded image bytes (a list, for
    serving_encoded) or a uint8 array [B, H, W, 3] (serving_default)."""
    predict_pb2, _ = _apis()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    if signature == "serving_encoded":
        tensor = tf.make_tensor_proto(list(images), dtype=tf.string, shape=[len(images)])
        request.inputs["encoded_images"].CopyFrom(tensor)
    elif signature == "serving_default":
        array = np.asarray(images)
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"serving_default takes uint8 [B, H, W, 3], got {array.dtype} "
                             f"{array.shape}")
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(array))
    else:
        raise ValueError(f"unknown signature {signature!r}: serving_encoded or serving_default")
    return request


def parse_predict_response(response):
    """{output name: numpy array} of a PredictResponse."""
    return {name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}


def write_warmup_requests(saved_model_dir, size=64):
    """Writes assets.extra/tf_serving_warmup_requests (a TFRecord of PredictionLogs: one
    request per signature on a grey size x size image), which TF Serving replays at load.
    Returns its path."""
    _, prediction_log_pb2 = _apis()
    grey = np.full((1, size, size, 3), 128, np.uint8)
    jpeg = tf.io.encode_jpeg(grey[0]).numpy()
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, images in (("serving_encoded", [jpeg]), ("serving_default", grey)):
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.CopyFrom(predict_request(images, signature=signature))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(saved_model_dir):
    """The PredictRequests of a SavedModel's warm-up file."""
    _, prediction_log_pb2 = _apis()
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
            for record in tf.data.TFRecordDataset(path)]
