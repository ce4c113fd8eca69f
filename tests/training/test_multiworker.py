"""Two worker processes on localhost ports, each with its own TF_CONFIG, as TF's multi-worker
tests run them: the same losses as one process on the same global batch, only the chief
writes, and a lost worker stops the other with an error, after which a rerun resumes."""
import glob
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "configs" / "quickstart" / "retinanet_r18_sample.gin")
BINDINGS = [  # a tiny RetinaNet with synchronised BN, so two workers equal one process
    "ModelConfig.overrides = {'depth': 18, 'norm': 'sync_bn', 'freeze_at': 0, "
    "'fpn_channels': 16}",
    "DataConfig.short_side = (128,)", "DataConfig.max_long_side = 128",
    "DataConfig.pad_size = (128, 128)", "DataConfig.train_limit = 16",
    "ScheduleConfig.warmup_steps = 2", "TrainConfig.log_every = 1",
    "TrainConfig.image_summary_every = 0", "TrainConfig.checkpoint_every = 2",
]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _command(model_dir, steps):
    return [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", QUICKSTART,
            "--model_dir", str(model_dir), "--steps", str(steps), "--batch_size", "4",
            "--noeval"] + [f"--gin_bindings={b}" for b in BINDINGS]


def _env(tf_config=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2",
               TFDET_COLLECTIVE_TIMEOUT="30")
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _start_workers(model_dir, steps, tmp_path, tag):
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in range(2):
        log = open(tmp_path / f"{tag}-worker{index}.log", "w")
        procs.append((subprocess.Popen(
            _command(model_dir, steps), stdout=log, stderr=subprocess.STDOUT,
            env=_env({"cluster": cluster, "task": {"type": "worker", "index": index}})), log))
    return procs


def _wait(procs, timeout):
    codes = []
    for proc, log in procs:
        codes.append(proc.wait(timeout=timeout))
        log.close()
    return codes


def _losses(model_dir):
    """Per-step total loss from the TensorBoard events in model_dir/train."""
    files = glob.glob(str(model_dir / "train" / "events.out.tfevents.*"))
    out = {}
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "loss/total_loss":
                    out[event.step] = float(tf.make_ndarray(value.tensor))
    return files, out


def test_two_workers_train_as_one_process_and_survive_a_lost_worker(tmp_path):
    single = tmp_path / "single"
    run = subprocess.run(_command(single, 4), env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    multi = tmp_path / "multi"
    procs = _start_workers(multi, 4, tmp_path, "first")
    assert _wait(procs, 600) == [0, 0], (tmp_path / "first-worker1.log").read_text()[-3000:]
    logs = [(tmp_path / f"first-worker{i}.log").read_text() for i in range(2)]
    assert "CollectiveAllReduceStrategy with 2 replica(s)" in logs[0]  # MultiWorkerMirrored
    # The same loss at every step as one process with the same global batch of 4.
    _, reference = _losses(single)
    files, losses = _losses(multi)
    assert sorted(reference) == sorted(losses) == [1, 2, 3, 4]
    np.testing.assert_allclose([losses[s] for s in range(1, 5)],
                               [reference[s] for s in range(1, 5)], rtol=1e-4)
    # Only the chief wrote: one events file, the checkpoints, no worker scratch left behind.
    assert len(files) == 1
    assert tf.train.latest_checkpoint(str(multi)).endswith("ckpt-4")
    assert not list(multi.glob(".worker-*"))

    # A worker killed mid-run: the other stops with an error naming the cause, not a hang.
    procs = _start_workers(multi, 40, tmp_path, "killed")
    deadline = time.time() + 400
    while int(tf.train.latest_checkpoint(str(multi)).rsplit("-", 1)[1]) < 6:
        assert time.time() < deadline and procs[0][0].poll() is None, \
            (tmp_path / "killed-worker0.log").read_text()[-3000:]
        time.sleep(0.2)
    procs[1][0].send_signal(signal.SIGKILL)
    chief_code = procs[0][0].wait(timeout=300)
    procs[1][0].wait()
    for _, log in procs:
        log.close()
    chief_log = (tmp_path / "killed-worker0.log").read_text()
    assert chief_code != 0 and "lost the cluster" in chief_log, chief_log[-3000:]
    saved = int(tf.train.latest_checkpoint(str(multi)).rsplit("-", 1)[1])
    assert 6 <= saved < 40

    # Rerunning both resumes from the last checkpoint.
    procs = _start_workers(multi, saved + 2, tmp_path, "resumed")
    assert _wait(procs, 600) == [0, 0], (tmp_path / "resumed-worker0.log").read_text()[-3000:]
    assert f"resumed from {multi / f'ckpt-{saved}'} at step {saved}" in (
        tmp_path / "resumed-worker0.log").read_text()
    assert tf.train.latest_checkpoint(str(multi)).endswith(f"ckpt-{saved + 2}")
