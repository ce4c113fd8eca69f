"""Export traces the detector once per signature and saves nothing else of the Keras model."""
import tensorflow as tf

from tfdet import data, models
from tfdet.export import export_saved_model


def test_export_traces_the_detector_once_per_signature(tmp_path):
    model = models.get("blazeface", num_classes=2, image_size=64)
    traces = []
    call = model.call

    def counted(*args, **kwargs):
        traces.append(tf.executing_eagerly())
        return call(*args, **kwargs)

    model.call = counted
    path = export_saved_model(model, str(tmp_path / "1"), [1, 2], ["a", "b"],
                              transform=data.ssd_transforms(False, 64), canvas=64,
                              size_divisor=32)
    # serving_default and serving_encoded, each traced once (graph mode); no third trace for
    # Keras' own default signature, no second one for the saving context.
    assert traces == [False, False]
    loaded = tf.saved_model.load(path)
    assert sorted(loaded.signatures) == ["serving_default", "serving_encoded"]
    assert not hasattr(loaded, "model")
    out = loaded.signatures["serving_default"](images=tf.zeros([1, 50, 70, 3], tf.uint8))
    assert out["detection_boxes"].shape[0] == 1
    # The variables are saved: the restored graph reads the trained values.
    assert len(loaded.detector_variables) == len(model.weights)
