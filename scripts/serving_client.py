"""Sends images to a TF Serving server over gRPC and prints the detections.

  docker run -p 8500:8500 -p 8501:8501 -v "$PWD/saved_models/retinanet:/models/retinanet" \\
      -e MODEL_NAME=retinanet tensorflow/serving
  python scripts/serving_client.py --server localhost:8500 --model_name retinanet \\
      --images IMG [IMG ...] [--signature serving_encoded] [--labels saved_models/retinanet/1]

serving_encoded sends the files' bytes; serving_default decodes them here and sends uint8
pixels (one request per image then, as images differ in size). Needs tensorflow-serving-api.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("server", "localhost:8500", "TF Serving's gRPC host:port")
flags.DEFINE_string("model_name", None, "the served model's name", required=True)
flags.DEFINE_list("images", None, "image files", required=True)
flags.DEFINE_enum("signature", "serving_encoded", ["serving_encoded", "serving_default"],
                  "which signature to call")
flags.DEFINE_integer("version", None, "a model version (default: the server's latest)")
flags.DEFINE_string("labels", None, "a SavedModel folder whose assets.extra/labels.json names "
                    "the classes")
flags.DEFINE_float("min_score", 0.3, "print detections at or above this score")
flags.DEFINE_float("timeout", 30.0, "seconds per request")


def main(_):
    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tfdet.export import serving

    f = flags.FLAGS
    names = {}
    if f.labels:
        with open(os.path.join(f.labels, "assets.extra", "labels.json")) as fh:
            info = json.load(fh)
        names = dict(zip(info["category_ids"], info["class_names"]))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f.server))
    encoded = [tf.io.read_file(path).numpy() for path in f.images]
    if f.signature == "serving_encoded":
        batches = [(f.images, encoded)]
    else:
        batches = [([path], tf.io.decode_image(data, channels=3, expand_animations=False)
                    .numpy()[None]) for path, data in zip(f.images, encoded)]
    for paths, images in batches:
        request = serving.predict_request(images, f.model_name, f.signature, f.version)
        out = serving.parse_predict_response(stub.Predict(request, timeout=f.timeout))
        for b, path in enumerate(paths):
            n = int(out["num_detections"][b])
            for box, score, cls in zip(out["detection_boxes"][b, :n],
                                       out["detection_scores"][b, :n],
                                       out["detection_classes"][b, :n]):
                if score >= f.min_score:
                    print(f"{path}\t{names.get(int(cls), int(cls))}\t{score:.3f}\t"
                          f"{np.round(box, 4).tolist()} (y1, x1, y2, x2 normalised)")


if __name__ == "__main__":
    sys.exit(app.run(main))
