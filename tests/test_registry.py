"""A zoo row is a config file: its architecture is its `architecture.*` bindings plus its
family base's, read by the registry without gin, and a new row (here a DCN RetinaNet, which
the zoo does not have) is three lines of gin."""
import shutil

import numpy as np
import pytest

from tfdet import config_files, models
from tfdet.config import load_experiment
from tfdet.layers import DeformableConv2D
from tfdet.layers.norm import count_params_without_norm_statistics as count
from tfdet.registry import DETECTORS, SSD_BACKBONES, YOLO_BACKBONES, Registry

NEW_ROW = ("include 'retinanet_r50_fpn_1x.gin'\n"
           "ModelConfig.name = 'retinanet_dcn_r50_fpn_1x'\n"
           "architecture.dcn_stages = (3, 4, 5)\n")
# The offset / mask convs DCNv2 adds to R50's res3-res5 3x3 convs: a 3x3 conv from the block's
# width (128, 256, 512 in 4, 6, 3 blocks) to 27 outputs with a bias.
R50_DCN_EXTRA = sum(n * (9 * c * 27 + 27) for n, c in ((4, 128), (6, 256), (3, 512)))


def test_the_registry_reads_what_gin_binds():
    """The registry's side-effect-free reading of each row's file agrees with gin's (the
    experiment's architecture), and a family base's settings reach its rows."""
    for name in models.list_models():
        exp = load_experiment(f"{config_files.CONFIGS}/{name}.gin")
        assert exp.architecture == models.architecture(name), name
    detector, settings = models.architecture("mask_rcnn_dcn_r101_vd_fpn_1x")
    assert detector == "mask_rcnn"
    assert (settings["depth"], settings["variant"], settings["dcn_stages"]) == (101, "d", (3, 4, 5))
    assert settings["score_threshold"] == 0.05  # the Faster R-CNN FPN base's test setting
    assert models.architecture("faster_rcnn_r50_fpn_gn_2x")[1]["box_head_convs"] == 4


def test_a_new_row_is_a_three_line_config(tmp_path, monkeypatch):
    """In a copy of tfdet's configs the file registers the row; anywhere, load_experiment
    builds it: R50 RetinaNet with DCNv2 in res3-res5 (the offset convs' count on top of the
    plain row's, deformable convs in every res3-res5 bottleneck)."""
    configs = tmp_path / "configs"
    shutil.copytree(config_files.CONFIGS, configs)
    (configs / "retinanet_dcn_r50_fpn_1x.gin").write_text(NEW_ROW)
    monkeypatch.setattr(config_files, "CONFIGS", str(configs))
    models._rows.cache_clear()
    try:
        assert "retinanet_dcn_r50_fpn_1x" in models.list_models()
        detector, settings = models.architecture("retinanet_dcn_r50_fpn")
        plain = models.architecture("retinanet_r50_fpn_1x")[1]
        assert detector == "retinanet" and settings == dict(plain, dcn_stages=(3, 4, 5))
    finally:
        models._rows.cache_clear()
    monkeypatch.undo()
    assert "retinanet_dcn_r50_fpn_1x" not in models.list_models()

    # Outside tfdet's configs (a user's folder), the file still builds its model.
    (tmp_path / "mine.gin").write_text(NEW_ROW)
    model = load_experiment(str(tmp_path / "mine.gin")).build_model(num_classes=3)
    assert model.name == "retinanet_dcn_r50_fpn_1x" and model.num_classes == 3
    deformable = {layer.name for layer in model.network.layers
                  if isinstance(layer, DeformableConv2D)}
    blocks = {3: 4, 4: 6, 5: 3}
    assert deformable == {f"res{s}_{b}_b_conv" for s in blocks for b in range(blocks[s])}
    reference = models.get("retinanet_r50_fpn_1x", num_classes=3, build_size=64)
    assert count(model) == count(reference) + R50_DCN_EXTRA


def test_a_config_can_change_a_registered_rows_architecture():
    """Bindings over a row's file change the model (and its name, for the backbone)."""
    exp = load_experiment(f"{config_files.CONFIGS}/faster_rcnn_r50_fpn_1x.gin",
                          ["architecture.depth = 18", "architecture.norm = 'bn'",
                           "architecture.freeze_at = 0", "architecture.fpn_channels = 32",
                           "architecture.fc_dim = 64"])
    model = exp.build_model(num_classes=2)
    assert model.name == "faster_rcnn_r18_fpn_1x"
    assert (model.config["depth"], model.config["fpn_channels"]) == (18, 32)
    assert model.config["test_pre_nms_top_k"] == 1000  # the row's, kept
    with pytest.raises(ValueError, match="binds architecture.detector = 'ssd' .* but model "
                                         "'faster_rcnn_r50_fpn_1x' is a 'faster_rcnn' row"):
        load_experiment(f"{config_files.CONFIGS}/faster_rcnn_r50_fpn_1x.gin",
                        ["architecture.detector = 'ssd'"]).build_model()
    # Naming another row on a row's file builds that row (the file's own bindings are not
    # changes), as before rows were files; a changed setting still applies.
    exp = load_experiment(f"{config_files.CONFIGS}/retinanet_r50_fpn_1x.gin",
                          ["ModelConfig.name = 'retinanet_r101_fpn_1x'"])
    assert exp.architecture_changes() == {}
    exp = load_experiment(f"{config_files.CONFIGS}/retinanet_r50_fpn_1x.gin",
                          ["ModelConfig.name = 'yolov3_r34'", "architecture.depth = 18"])
    with pytest.raises(ValueError, match=r"\(with \['depth'\]\) but model 'yolov3_r34' is a "
                                         r"'yolov3' row"):
        exp.build_model()
    exp = load_experiment(f"{config_files.CONFIGS}/mask_rcnn_r50_fpn_1x.gin",
                          ["ModelConfig.name = 'ssd_vgg16_300'"])
    assert exp.architecture_changes() == {} and not exp.predicts_masks


def test_registries_name_their_builders_and_refuse_unknown_names():
    assert DETECTORS.names() == ["cascade_mask_rcnn", "cascade_rcnn", "faster_rcnn",
                                 "mask_rcnn", "retinanet", "ssd", "yolov3"]
    assert SSD_BACKBONES.names() == ["blazenet", "faceboxnet", "mobilenet_v1", "vgg16"]
    assert YOLO_BACKBONES.names() == ["darknet53", "mobilenet_v1", "resnet"]
    with pytest.raises(ValueError, match=r"unknown YOLOv3 backbone 'vgg'; registered: "
                                         r"darknet53, mobilenet_v1, resnet"):
        models.get("yolov3_darknet53", backbone="vgg")
    registry = Registry("thing")
    registry.register("a")(len)
    with pytest.raises(ValueError, match="thing 'a' is registered already"):
        registry.register("a")(abs)
    # A user's backbone, registered, is a config value like the built-in ones.
    @SSD_BACKBONES.register("tiny_test_net")
    def tiny(config):
        import keras
        image = keras.Input((config["image_size"], config["image_size"], 3))
        x = keras.layers.Conv2D(8, 3, strides=8, padding="same")(image)
        return image, [x, keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)]
    try:
        model = models.get("blazeface", backbone="tiny_test_net", image_size=64, extras=())
        out = model(np.zeros((1, 64, 64, 3), np.float32))
        assert model.feature_sizes == (8, 4) and out["boxes"].shape[-1] == 4
    finally:
        SSD_BACKBONES._builders.pop("tiny_test_net")
