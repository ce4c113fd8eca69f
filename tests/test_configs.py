"""Every zoo row has its config file, and the file builds the row it is named after with the
schedule the zoo documents for it."""
import pathlib
import re

from tfdet import models
from tfdet.config import load_experiment

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
# Rows without a 1x / 2x suffix: (iterations, images per iteration, metric), from the zoo's
# configs (ssd_vgg16_300.yml: 400k x 32; ssd_vgg16_300_voc.yml: 120k x 32;
# ssd_mobilenet_v1_voc.yml: 28k x 64; yolov3_darknet.yml: 500k x 64;
# blazeface_1000e.yml: 1000 epochs).
OTHER_SCHEDULES = {
    "ssd_vgg16_300": (400000, 32, "coco"), "ssd_vgg16_512": (400000, 32, "coco"),
    "ssd_vgg16_300_voc": (120000, 32, "voc"), "ssd_vgg16_512_voc": (120000, 32, "voc"),
    "ssd_mobilenet_v1_voc": (28000, 64, "voc"),
    **{f"yolov3_{b}{v}": (500000, 64, "voc" if v else "coco")
       for b in ("darknet53", "mobilenet_v1", "r34") for v in ("", "_voc")},
    "yolov3_r50vd_dcn": (500000, 64, "coco"),
    # blazeface_1000e.yml: 1000 epochs of WIDER FACE train (12,880 images) in batches of 8.
    **{e: (1000 * (12880 // 8), 8, "widerface:data/wider_face/eval_tools/ground_truth")
       for e in ("blazeface", "blazeface_fpn_ssh")},
    # The static zoo's face configs: 320k iterations of 8 images.
    **{e: (320000, 8, "widerface:data/wider_face/eval_tools/ground_truth")
       for e in ("blazeface_lite", "blazeface_nas", "blazeface_nas_v2", "faceboxes",
                 "faceboxes_lite")},
}


def test_every_row_has_a_config_naming_it():
    for name in models.list_models():
        exp = load_experiment(str(CONFIGS / f"{name}.gin"))
        assert exp.model.name == name
        steps, batch = exp.schedule.total_steps, exp.train.global_batch_size
        if name in OTHER_SCHEDULES:
            assert (steps, batch, exp.data.metric) == OTHER_SCHEDULES[name], name
            continue
        # 1x = 90k iterations of 16 images (C4 rows: 180k of 8), 2x twice that.
        epochs = int(re.search(r"_(\d)x(_|$)", name.replace("_ms_test", "_1x")).group(1))
        assert steps * batch == epochs * 90000 * 16, name
        assert exp.data.metric == "coco"


def test_configs_that_import_code_are_refused(tmp_path):
    import pytest

    from tfdet.config import UnsafeConfigError

    marker = tmp_path / "ran"
    evil = tmp_path / "evil_module.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    base = tmp_path / "base"
    base.mkdir()
    (base / "inner.gin").write_text("import evil_module\nModelConfig.name = 'retinanet_r50_fpn_1x'\n")
    (tmp_path / "outer.gin").write_text("include 'base/inner.gin'\nModelConfig.num_classes = 3\n")
    (tmp_path / "dyn.gin").write_text("from __gin__ import dynamic_registration\n"
                                      "import subprocess\n"
                                      "ModelConfig.name = @subprocess.getoutput()\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(UnsafeConfigError, match=r"base/inner.gin:1: 'import evil_module' is "
                                                    r"refused"):
            load_experiment(str(tmp_path / "outer.gin"))
        with pytest.raises(UnsafeConfigError, match="dynamic_registration"):
            load_experiment(str(tmp_path / "dyn.gin"))
        with pytest.raises(UnsafeConfigError, match="--gin_bindings:1: 'import evil_module'"):
            load_experiment(None, ["import evil_module"])
        assert not marker.exists()  # nothing ran
        # A trusted config may import, when asked.
        (tmp_path / "trusted.gin").write_text("import evil_module\nModelConfig.num_classes = 3\n")
        exp = load_experiment(str(tmp_path / "trusted.gin"), allow_imports=True)
        assert exp.model.num_classes == 3 and marker.exists()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("evil_module", None)
