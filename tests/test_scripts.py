"""The command-line scripts end to end on a small untrained export: export -> infer (PNG out),
benchmark (JSON out), eval (COCO AP from the SavedModel). Training is covered by
tests/training/test_trainer.py, which runs scripts/train.py."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfdet import data

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "quickstart" / "retinanet_r18_sample.gin")


def run(script, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    base = tmp_path_factory.mktemp("scripts") / "export"
    out = run("export.py", "--config", CONFIG, "--untrained_num_classes", "3",
              "--output", str(base), "--gin_bindings",
              "ModelConfig.overrides = {'depth': 18, 'norm': 'bn', 'fpn_channels': 32, "
              "'score_threshold': 0.0}")
    path = out.strip().splitlines()[-1].split("SavedModel: ", 1)[1]
    assert path == str(base / "1") and (base / "1" / "saved_model.pb").exists()
    return path


def test_infer_writes_a_png_of_the_image_size(saved_model, tmp_path):
    image = data.load_sample_dataset("val").examples[0]
    output = tmp_path / "out.png"
    stdout = run("infer.py", "--saved_model", saved_model, "--image", image.path,
                 "--output", str(output), "--min_score", "0.0")
    png = tf.io.decode_png(tf.io.read_file(str(output))).numpy()
    assert png.shape == (image.height, image.width, 3)
    assert "detections >= 0.0 drawn" in stdout


def test_benchmark_writes_the_design_json(saved_model, tmp_path):
    folder = pathlib.Path(data.load_sample_dataset("val").examples[0].path).parent
    result_path = tmp_path / "bench.json"
    run("benchmark.py", "--saved_model", saved_model, "--images", str(folder),
        "--num_images", "3", "--warmup", "1", "--json", str(result_path))
    result = json.loads(result_path.read_text())
    assert result["num_images"] == 3 and result["fps"] > 0
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p90"]
    assert result["fps"] == pytest.approx(1000 / result["latency_ms"]["mean"])
    assert result["model"].endswith("1") and "CPU" in result["device"]


def test_profile_ops_names_the_fused_convolutions_of_the_saved_model(saved_model, tmp_path):
    image = data.load_sample_dataset("val").examples[0]
    stdout = run("profile_ops.py", "--saved_model", saved_model, "--image", image.path,
                 "--runs", "2", "--warmup", "1", "--json", str(tmp_path / "p.json"))
    profile = json.loads((tmp_path / "p.json").read_text())
    # The ops that ran are the rewritten ones: convolutions fused with their bias / ReLU.
    convs = {k: v for k, v in profile["by_type"].items() if "Conv2D" in k}
    assert convs and all("Fused" in k for k in convs), sorted(profile["by_type"])
    assert 0 < profile["op_ms"] and 0 < profile["wall_ms"]
    assert sum(v["alloc_bytes"] for v in profile["by_type"].values()) > 0
    assert any(k.startswith("Decode") for k in profile["by_type"])  # decoding is profiled
    assert "| op type | ms / run |" in stdout


def test_benchmark_roi_align_times_both_computations():
    stdout = run("benchmark_roi_align.py", "--sizes", "64x96", "--rois", "8", "--train_batch",
                 "1", "--train_rois", "4", "--runs", "1")
    lines = [line for line in stdout.splitlines() if line.startswith("64x96")]
    assert [line.split(":")[0] for line in lines] == ["64x96 crop", "64x96 gather"]
    assert all("forward + backward 1 x 4 RoIs" in line for line in lines)


def test_benchmark_conv_times_each_shape_and_refuses_a_bad_one(tmp_path):
    out = tmp_path / "conv.json"
    run("benchmark_conv.py", "--shapes", "8x4x8x3,4x16x8x1", "--runs", "2", "--warmup", "1",
        "--threads", "1", "--json", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert [r["shape"] for r in rows] == ["8x8 4->8 k3", "4x4 16->8 k1"]
    # 2 * 64 pixels * 4 * 8 * 9 = 36,864 FLOP over the printed milliseconds.
    assert rows[0]["gflops"] == pytest.approx(36864 / rows[0]["ms"] / 1e6, rel=0.02, abs=0.05)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark_conv.py"), "--shapes",
                          "64x256x0x3"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode != 0 and "'64x256x0x3' is not PIXELSxINxOUTxKERNEL" in bad.stderr


def test_eval_scores_the_saved_model(saved_model, tmp_path):
    results = tmp_path / "results.json"
    pictures = tmp_path / "pictures"
    stdout = run("eval.py", "--saved_model", saved_model, "--data", "sample:val",
                 "--results", str(results), "--visualize", str(pictures),
                 "--visualize_count", "2", "--visualize_score", "0.0")
    metrics = json.loads(stdout.strip().splitlines()[-1])
    assert metrics["source"] == saved_model
    assert 0 <= metrics["AP"] <= metrics["AP50"] <= 1 and np.isfinite(metrics["AP"])
    # Untrained with score threshold 0: every image gets its 100 boxes, in the data set's
    # category ids and inside the image.
    val = data.load_sample_dataset("val")
    # --visualize: ground truth | detections, side by side, for the first two images.
    for ex in val.examples[:2]:
        png = tf.io.decode_png(tf.io.read_file(str(pictures / f"{ex.image_id}.png"))).numpy()
        assert png.shape == (ex.height, 2 * ex.width + 8, 3)
    assert len(list(pictures.iterdir())) == 2
    detections = json.loads(results.read_text())
    assert len(detections) == 100 * len(val) and metrics["images"] == len(val)
    assert {d["category_id"] for d in detections} <= set(val.category_ids)
    sizes = {ex.image_id: (ex.width, ex.height) for ex in val.examples}
    for d in detections[:500]:
        x, y, w, h = d["bbox"]
        width, height = sizes[d["image_id"]]
        assert x >= 0 and y >= 0 and x + w <= width + 1e-3 and y + h <= height + 1e-3


def test_eval_of_a_saved_model_scores_the_first_limit_images(saved_model, tmp_path):
    results = tmp_path / "results.json"
    stdout = run("eval.py", "--saved_model", saved_model, "--data", "sample:val", "--limit",
                 "3", "--results", str(results))
    assert json.loads(stdout.strip().splitlines()[-1])["images"] == 3
    val = data.load_sample_dataset("val")
    assert {d["image_id"] for d in json.loads(results.read_text())} == {
        ex.image_id for ex in val.examples[:3]}

