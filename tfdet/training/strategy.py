"""The tf.distribute strategy a machine calls for.

TF_CONFIG naming several workers -> MultiWorkerMirroredStrategy (collectives time out after
TFDET_COLLECTIVE_TIMEOUT seconds, default 300, so a lost worker stops the others); more than one visible GPU -> MirroredStrategy;
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
            # A collective that waits longer than this for a peer (a worker that died) fails
            # with DeadlineExceeded instead of waiting forever.
            options = tf.distribute.experimental.CommunicationOptions(
                timeout_seconds=float(os.environ.get("TFDET_COLLECTIVE_TIMEOUT", 300)))
            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return tf.distribute.get_strategy()


def worker_info(strategy):
    """(number of workers, this worker's index, whether it is the chief) of a strategy: the
    chief writes checkpoints, summaries and run files; the others write to scratch folders."""
    resolver = getattr(strategy, "cluster_resolver", None)  # set for multi-worker strategies
    if resolver is None:
        return 1, 0, True
    cluster = resolver.cluster_spec().as_dict()
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if workers <= 1:
        return 1, 0, True
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    index = task_id + (len(cluster.get("chief", [])) if task_type == "worker" else 0)
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0
                                        and "chief" not in cluster)
    return workers, index, is_chief


def describe(strategy):
    """A one-line description for logs: strategy class, replicas, devices."""
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has no device list
        devices = ["the default device"]
    return (f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s) "
            f"on {', '.join(devices)}")
