"""The trainer: multi-replica equivalence, resume, kill -9 safety, non-finite losses."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdet.config import load_experiment
from tfdet.training import NonFiniteLossError, Trainer, restore_model

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "configs" / "quickstart" / "retinanet_r18_sample.gin")
TINY = [  # the quickstart recipe at 128 px with a 32-channel FPN
    "ModelConfig.overrides = {'depth': 18, 'norm': 'bn', 'freeze_at': 0, 'fpn_channels': 32}",
    "DataConfig.short_side = (128,)", "DataConfig.max_long_side = 128",
    "DataConfig.eval_short_side = 128", "DataConfig.pad_size = (128, 128)",
    "TrainConfig.global_batch_size = 2", "ScheduleConfig.warmup_steps = 2",
]


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    return env


def test_two_replicas_match_one_device_on_the_same_global_batch():
    out = subprocess.run([sys.executable, str(pathlib.Path(__file__).with_name(
        "_mirrored_step.py"))], capture_output=True, text=True, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["finite"] == [True, True]
    assert result["initial_diff"] == 0.0
    for name, value in result["single"].items():
        assert result["mirrored"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    # The step moved the weights, and both runs moved them the same way (sync BN statistics
    # included, as they are weights too).
    assert result["update"] > 1e-3
    assert result["weight_diff"] < 1e-5 * max(1.0, result["update"]) + 1e-5


def _trainer(exp, train_set, model_dir, **kwargs):
    keras.utils.set_random_seed(0)
    return Trainer(lambda: exp.build_model(train_set.num_classes), exp.build_optimizer,
                   model_dir=str(model_dir), **kwargs)


def _fit(exp, train_set, model_dir, steps):
    trainer = _trainer(exp, train_set, model_dir)
    result = trainer.fit(lambda position: exp.train_pipeline(train_set, 2, skip=position), steps,
                         2, checkpoint_every=2, verbose=0)
    return trainer, result


def test_resume_continues_from_the_saved_step_with_the_same_lr_and_data(tmp_path, caplog):
    import dataclasses
    import shutil

    exp = load_experiment(QUICKSTART, TINY)
    train_set = exp.dataset("sample:train", limit=9)
    # One image breaks after the reader checked it: the pipeline drops that record, so the
    # data position (records consumed) runs ahead of steps x batch, and a resumed run must
    # continue from the records, not from the step count.
    copies = []
    for i, ex in enumerate(train_set.examples):
        copy = tmp_path / f"img{i}.png"
        shutil.copy(ex.path, copy)
        copies.append(dataclasses.replace(ex, path=str(copy)))
    train_set = dataclasses.replace(train_set, examples=copies)
    first = int(next(iter(exp.train_pipeline(train_set, 2)))["image_id"][0])
    broken = next(ex.path for ex in copies if ex.image_id == first)  # the first record read
    with open(broken, "wb") as f:
        f.write(b"broken after the check")
    straight, result = _fit(exp, train_set, tmp_path / "straight", 4)
    assert result.step == 4 and result.checkpoint.endswith("ckpt-4")
    # Eval and export rebuild the model and load only its part of the checkpoint: every
    # weight (the head towers included) must come back.
    fresh = restore_model(exp.build_model(train_set.num_classes), result.checkpoint)
    for a, b in zip(straight.model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)

    _fit(exp, train_set, tmp_path / "interrupted", 2)
    resumed = _trainer(exp, train_set, tmp_path / "interrupted")
    assert resumed.restore() == 2
    assert int(resumed.optimizer.iterations.numpy()) == 2
    # Warmup over 2 steps, so at step 2 the LR is the base LR: 0.001 for 8 images scaled to 2.
    assert resumed.learning_rate() == pytest.approx(0.001 * 2 / 8, rel=1e-6)
    result = resumed.fit(lambda position: exp.train_pipeline(train_set, 2, skip=position), 4, 2,
                         checkpoint_every=2, verbose=0)
    assert result.step == 4
    for a, b in zip(straight.model.weights, resumed.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)

    # A truncated latest checkpoint: resume falls back to the one before, naming the bad one.
    data_file = next((tmp_path / "straight").glob("ckpt-4.data-*"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    fallback = _trainer(exp, train_set, tmp_path / "straight")
    with caplog.at_level("WARNING", logger="tfdet.training"):
        assert fallback.restore() == 2
    assert any("ckpt-4 is unreadable" in r.getMessage() for r in caplog.records)


def test_a_run_killed_mid_training_resumes_from_its_last_checkpoint(tmp_path):
    model_dir = tmp_path / "run"
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", QUICKSTART,
               "--model_dir", str(model_dir), "--steps", "8", "--noeval"] + [
                   f"--gin_bindings={b}" for b in TINY + ["TrainConfig.checkpoint_every = 1"]]
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    def recorded_step():  # the checkpoint state file, not just files on disk (a save can
        latest = tf.train.latest_checkpoint(str(model_dir))  # be half-way when killed)
        return int(latest.rsplit("-", 1)[1]) if latest else 0

    while recorded_step() < 3:
        assert process.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline, "no checkpoint after 240 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # kill -9, possibly in the middle of a save
    process.wait()
    latest = tf.train.latest_checkpoint(str(model_dir))
    saved = int(latest.rsplit("-", 1)[1])
    assert 3 <= saved < 8
    out = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"resumed from {latest} at step {saved}" in out.stderr
    assert f"final checkpoint: {model_dir / 'ckpt-8'}" in out.stdout


def _poisoned(trainer):
    """Makes the class loss NaN whenever the batch carries a NaN `poison` (a real NaN image
    is not a reliable source: TF's CPU ReLU maps NaN to 0 inside graphs)."""
    compute_losses = trainer.model.compute_losses

    def poisoned(batch, training=True):
        losses = compute_losses(batch, training)
        losses["class_loss"] = losses["class_loss"] + batch["poison"]
        losses["total_loss"] = losses["class_loss"] + losses["box_loss"]
        return losses

    trainer.model.compute_losses = poisoned
    return trainer


def _nan_batches(step):
    batch = {"images": tf.random.stateless_normal([2, 128, 128, 3], [3, 4]),
             "boxes": tf.constant([[[10.0, 10, 50, 60]], [[20.0, 30, 90, 100]]]),
             "classes": tf.zeros([2, 1], tf.int32), "is_crowd": tf.zeros([2, 1], tf.bool),
             "poison": tf.constant(np.nan, tf.float32)}
    return tf.data.Dataset.from_tensors(batch).repeat()


def test_non_finite_loss_stops_with_the_step_and_terms_and_keeps_the_weights(tmp_path):
    exp = load_experiment(QUICKSTART, TINY)
    train_set = exp.dataset("sample:train", limit=4)
    trainer = _poisoned(_trainer(exp, train_set, tmp_path / "error"))
    before = [v.numpy() for v in trainer.model.weights]
    with pytest.raises(NonFiniteLossError, match=r"step 1: non-finite loss \(class_loss=nan"):
        trainer.fit(_nan_batches, 3, 2, verbose=0)
    for b, v in zip(before, trainer.model.weights):
        np.testing.assert_array_equal(b, v.numpy())
    assert tf.train.latest_checkpoint(str(tmp_path / "error")) is None

    skipping = _poisoned(_trainer(exp, train_set, tmp_path / "skip", nonfinite="skip"))
    before = [v.numpy() for v in skipping.model.weights]
    result = skipping.fit(_nan_batches, 3, 2, verbose=0)
    assert result.step == 3 and result.skipped_steps == 3
    assert int(skipping.optimizer.iterations.numpy()) == 0
    for b, v in zip(before, skipping.model.weights):
        np.testing.assert_array_equal(b, v.numpy())


def test_skipping_stops_after_too_many_in_a_row_and_updates_must_stay_finite(tmp_path):
    exp = load_experiment(QUICKSTART, TINY)
    train_set = exp.dataset("sample:train", limit=4)
    skipping = _poisoned(_trainer(exp, train_set, tmp_path / "skip", nonfinite="skip",
                                  max_consecutive_skips=2))
    with pytest.raises(NonFiniteLossError, match=r"step 3: 3 steps in a row had a non-finite"):
        skipping.fit(_nan_batches, 6, 2, verbose=0)
    assert tf.train.latest_checkpoint(str(tmp_path / "skip")) is None
    # A finite loss whose update overflows the weights stops the run: the loss scaled by
    # 1e35 stays finite, its gradients times an LR of 1e15 do not.
    huge = _trainer(exp, train_set, tmp_path / "huge")
    huge.optimizer = keras.optimizers.SGD(1e15)
    huge.optimizer.build(huge.model.trainable_variables)
    compute_losses = huge.model.compute_losses

    def scaled(batch, training=True):
        losses = compute_losses(batch, training)
        return dict(losses, total_loss=losses["total_loss"] * 1e35)

    huge.model.compute_losses = scaled
    clean = lambda step: _nan_batches(step).map(  # noqa: E731
        lambda b: {k: v for k, v in b.items() if k != "poison"})
    with pytest.raises(NonFiniteLossError, match=r"step 1: the update made weights non-finite"):
        huge.fit(clean, 3, 2, verbose=0)
    assert tf.train.latest_checkpoint(str(tmp_path / "huge")) is None


def test_image_summaries_show_ground_truth_beside_labelled_detections(tmp_path):
    """TensorBoard gets, every image_summary_every steps, each image as ground truth |
    detections: twice the width (plus the gap), with the truth's class colours drawn."""
    from tfdet import visualize
    exp = load_experiment(QUICKSTART, TINY)
    train_set = exp.dataset("sample")
    trainer = _trainer(exp, train_set, tmp_path)
    trainer.fit(lambda position: exp.train_pipeline(train_set, 2, skip=position), 1, 2,
                checkpoint_every=10, verbose=0, image_summary_every=1)
    events = list((tmp_path / "train").glob("events.out.tfevents.*"))
    images = [v for e in events for record in tf.compat.v1.train.summary_iterator(str(e))
              for v in record.summary.value if v.tag == "truth_vs_detections"]
    assert images
    pictures = tf.make_ndarray(images[0].tensor)  # [width, height, PNG...] per image
    png = tf.io.decode_png(pictures[2]).numpy()
    assert png.shape[:2] == (128, 2 * 128 + 8)
    colors = {tuple(c) for c in visualize.class_colors(train_set.num_classes)}
    truth = {tuple(p) for p in png[:, :128].reshape(-1, 3)}
    assert colors & truth  # some ground-truth box is drawn in its class colour


def test_progress_off_a_terminal_is_plain_lines_per_interval(capsys):
    from tfdet.training.trainer import _Progress
    progress = _Progress(5, 1, 0, interval=3600.0)  # pytest's stdout is not a terminal
    for step in range(1, 6):
        progress.update(step, {"total_loss": 1.0 / step, "lr": 0.01})
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["step 5/5: total_loss 0.2 lr 0.01"]  # only the last step within the hour
