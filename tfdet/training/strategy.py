"""The tf.distribute strategy a machine calls for.

TF_CONFIG set -> MultiWorkerMirroredStrategy; more than one visible GPU -> MirroredStrategy;
otherwise the default strategy (one device). `devices` forces MirroredStrategy over those
devices (tests use two logical CPUs).
"""
import json
import os

import tensorflow as tf


def get_strategy(devices=None):
    if devices:
        return tf.distribute.MirroredStrategy(devices)
    if os.environ.get("TF_CONFIG"):
        config = json.loads(os.environ["TF_CONFIG"])
        if len(config.get("cluster", {}).get("worker", [])) > 1:
            return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return tf.distribute.get_strategy()


def describe(strategy):
    """A one-line description for logs: strategy class, replicas, devices."""
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has no device list
        devices = ["the default device"]
    return (f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s) "
            f"on {', '.join(devices)}")
