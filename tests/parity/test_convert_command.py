"""convert_weights.py turns a .pdparams into a run folder that eval.py and export.py take with
--checkpoint alone and tfdet.models.load returns as a model; bad requests write nothing."""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import require_shared
from tests.parity.seeded_weights import seeded_state
from tfdet import models
from tfdet.convert import ConversionError, convert_paddle_checkpoint, from_paddle, write_pdparams

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = pathlib.Path(__file__).parent / "fixtures"
ROW = "retinanet_r50_fpn_1x_coco"


@pytest.fixture(scope="module")
def pdparams(tmp_path_factory):
    manifest = json.loads((FIXTURES / f"{ROW}.json").read_text())
    state = seeded_state(manifest["shapes"], manifest["seed"],
                         {k: tuple(v) for k, v in manifest["overrides"].items()})
    path = tmp_path_factory.mktemp("w") / "model.pdparams"
    write_pdparams(state, path)
    return path, state


def _run(script, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)


def test_convert_then_load_eval_and_export(pdparams, tmp_path):
    path, state = pdparams
    out = tmp_path / "converted"
    done = _run("convert_weights.py", "--paddle_config", ROW, "--weights", str(path),
                "--output", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "config.gin").exists() and (out / "run.json").exists()
    info = json.loads((out / "run.json").read_text())
    assert info["num_classes"] == 80 and info["class_names"][0] == "person"

    model = models.load(out)
    reference, _ = from_paddle(ROW, state)
    x = np.random.default_rng(0).normal(size=(1, 256, 320, 3)).astype(np.float32)
    for ours, theirs in zip(model.raw_outputs(x), reference.raw_outputs(x)):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert model.config["fpn_extra"] == "conv_p5" and model.config["pre_nms"] == "anchor"

    coco = require_shared("coco128")
    ann = json.loads((coco / "annotations" / "instances_train2017_first128.json").read_text())
    keep = {im["id"] for im in ann["images"][:2]}
    ann["images"] = [im for im in ann["images"] if im["id"] in keep]
    ann["annotations"] = [a for a in ann["annotations"] if a["image_id"] in keep]
    small = tmp_path / "two.json"
    small.write_text(json.dumps(ann))
    report = tmp_path / "metrics.json"
    done = _run("eval.py", "--checkpoint", str(out),
                "--data", f"coco:{small}:{coco / 'images' / 'train2017'}",
                "--gin_bindings", "DataConfig.eval_short_side = 256",
                "--gin_bindings", "DataConfig.max_long_side = 320", "--json", str(report))
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(report.read_text())
    assert metrics["images"] == 2 and "AP" in metrics, metrics

    done = _run("export.py", "--checkpoint", str(out), "--output", str(tmp_path / "sm"),
                "--gin_bindings", "DataConfig.eval_short_side = 256",
                "--gin_bindings", "DataConfig.max_long_side = 320")
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((tmp_path / "sm").glob("*/saved_model.pb"))


def test_bad_requests_write_nothing(pdparams, tmp_path):
    path, state = pdparams
    out = tmp_path / "converted"
    with pytest.raises(ConversionError, match="the weights have 80 classes, --num_classes says 3"):
        convert_paddle_checkpoint(ROW, path, out, num_classes=3)
    with pytest.raises(ConversionError, match="unknown PaddleDetection config 'yolov9'"):
        convert_paddle_checkpoint("yolov9", path, out)
    truncated = tmp_path / "truncated.pdparams"
    truncated.write_bytes(path.read_bytes()[:100000])
    done = _run("convert_weights.py", "--paddle_config", ROW, "--weights", str(truncated),
                "--output", str(out))
    assert done.returncode != 0 and "truncated.pdparams: not a .pdparams pickle" in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".convert-*"))
    out.mkdir()
    with pytest.raises(FileExistsError):
        convert_paddle_checkpoint(ROW, path, out)
