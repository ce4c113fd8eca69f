"""tfdet.detect: one call on a file path or a uint8 array gives what the evaluation pipeline
gives for that image (same resize, normalisation and padding), in the image's pixels, with
class names."""
import dataclasses
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import tfdet
from tfdet import data
from tfdet.config import load_experiment
from tfdet.evaluation import compiled_predictor, to_original_pixels

CONFIG = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "quickstart"
             / "retinanet_r18_sample.gin")


def test_detect_matches_the_evaluation_pipeline_on_a_path_and_an_array():
    exp = load_experiment(CONFIG, ["ModelConfig.overrides = {'depth': 18, 'norm': 'bn', "
                                   "'fpn_channels': 32, 'score_threshold': 0.0}"])
    val = data.load_sample_dataset("val")
    model = exp.build_model(val.num_classes)
    example = val.examples[1]
    one = dataclasses.replace(val, examples=[example])
    batch = next(iter(exp.eval_pipeline(one)))
    out = compiled_predictor(model)(batch["images"], tf.cast(batch["image_size"], tf.float32))
    n = int(out["num_detections"][0])
    expected = to_original_pixels(out["boxes"][:, :n], batch["scale"],
                                  batch["original_size"])[0]
    got = tfdet.detect(model, example.path, experiment=exp, class_names=val.class_names)
    assert len(got["scores"]) == n > 10
    order = np.argsort(-out["scores"][0, :n].numpy(), kind="stable")
    np.testing.assert_allclose(got["scores"], out["scores"][0, :n].numpy()[order], atol=1e-5)
    np.testing.assert_allclose(got["boxes"], expected[order], atol=1e-2)
    assert got["class_names"] == [val.class_names[c] for c in got["classes"]]
    assert got["boxes"][:, 2].max() <= example.width and got["boxes"][:, 3].max() <= example.height
    pixels = tf.io.decode_image(tf.io.read_file(example.path), channels=3).numpy()
    again = tfdet.detect(model, pixels, experiment=exp, score_threshold=0.5)
    assert (again["scores"] >= 0.5).all()
    keep = got["scores"] >= 0.5
    np.testing.assert_allclose(again["boxes"], got["boxes"][keep], atol=1e-3)
    with pytest.raises(ValueError, match="uint8"):
        tfdet.detect(model, pixels.astype(np.float32), experiment=exp)
