"""`python scripts/train.py --config configs/ssd_vgg16_300.gin`, the command users know the
library by: without COCO it stops at once naming the expected paths and the flag for the
built-in data; with that flag the same config trains and evaluates."""
import json
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _train(config, *flags, cwd, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--config",
                           str(ROOT / "configs" / config), *flags],
                          capture_output=True, text=True, cwd=str(cwd), timeout=timeout)


@pytest.mark.parametrize("config, expected, steps", [
    ("ssd_vgg16_300.gin", ["data/coco/annotations/instances_train2017.json"], 400000),
    ("ssd_vgg16_300_voc.gin", ["data/voc/VOCdevkit/VOC2007", "data/voc/VOCdevkit/VOC2012"],
     120000),
])
def test_without_the_data_it_stops_at_once_naming_paths_and_flag(config, expected, steps,
                                                                 tmp_path):
    start = time.time()
    out = _train(config, cwd=tmp_path)
    assert out.returncode != 0
    assert time.time() - start < 60
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith("error: data set")
    for path in expected:
        assert path in message
    assert "--train_data sample --eval_data sample:val" in message
    assert f"The schedule is {steps} steps of 32 images: --steps N compresses it" in message
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()  # nothing written


def test_the_same_config_runs_on_the_built_in_data(tmp_path):
    # VGG16 at 300 px on all 32 sample images was 1.7 s an image on a 2-core Zen 3: scored on 4
    # (DataConfig.eval_limit, which the result names).
    out = _train("ssd_vgg16_300.gin", "--train_data", "sample", "--eval_data", "sample:val",
                 "--steps", "2", "--batch_size", "2", "--model_dir", str(tmp_path / "run"),
                 "--gin_bindings", "DataConfig.eval_limit = 4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert ("eval sample:val (the first 4 images: DataConfig.eval_limit) at step 2: AP "
            in out.stdout)
    evaluation = json.loads((tmp_path / "run" / "eval_2.json").read_text())
    assert evaluation["step"] == 2 and 0.0 <= evaluation["AP"] <= 1.0
    assert evaluation["images"] == 4 and evaluation["eval_limit"] == 4
    assert (tmp_path / "run" / "checkpoint").exists()
