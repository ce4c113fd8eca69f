"""Where the time and the memory of a TensorFlow function go, op by op, from a TF profiler
trace (the XSpace protobuf that TensorBoard's profile plugin reads).

    profile = profile_ops(fn, runs=5)          # fn(): one call of the model, untraced first
    print(format_profile(profile, top=20))

`profile` is a dict:
  runs, wall_ms (per run), op_ms (per run, summed over the intra-op threads, so it can exceed
  wall_ms on several cores), minor_faults (per run, the whole process),
  by_type / by_scope: {name: {"ms", "calls", "alloc_bytes", "allocs"}} per run, where a scope
  is the op's name cut to `scope_depth` parts (model / layer / ...) and allocations are the
  TF allocator's output buffers, charged to the op that asked for them.
The op types are those that ran, after grappler and oneDNN rewrote the graph
(`_MklNativeFusedConv2D`, `_FusedConv2D`, ...), not those that were written. Asynchronous
kernels (CPU CropAndResize) record no compute event: they appear by op name with their
allocations only, and their time is not counted.
"""
import collections
import glob
import os
import resource
import shutil
import tempfile
import time

import tensorflow as tf

_PYTHON_SIDE = {"Record", "StartRegion", "StopRegion", "Process"}  # executor bookkeeping


def _stat(plane, event, name):
    for s in event.stats:
        if plane.stat_metadata[s.metadata_id].name == name:
            kind = s.WhichOneof("value")
            value = getattr(s, kind)
            return plane.stat_metadata[value].name if kind == "ref_value" else value
    return None


def _scope(op_name, depth):
    return "/".join(op_name.split("/")[:depth])


def parse_trace(path, runs, scope_depth=3):
    """Aggregates one `*.xplane.pb` over `runs` calls: (by_type, by_scope, op_ms)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    new = lambda: {"ms": 0.0, "calls": 0, "alloc_bytes": 0, "allocs": 0}  # noqa: E731
    by_type = collections.defaultdict(new)
    by_scope = collections.defaultdict(new)
    type_of = {}
    allocations = []
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name == "MemoryAllocation":
                    op = _stat(plane, event, "tf_op")
                    size = _stat(plane, event, "requested_bytes")
                    if op and size:
                        allocations.append((op, int(size)))
                    continue
                if ":" not in name or not line.name.startswith(("tf_Compute", "tf_numa")):
                    continue
                op, kind = name.rsplit(":", 1)
                if kind in _PYTHON_SIDE:
                    continue
                type_of[op] = kind
                for table, key in ((by_type, kind), (by_scope, _scope(op, scope_depth))):
                    table[key]["ms"] += event.duration_ps / 1e9
                    table[key]["calls"] += 1
    for op, size in allocations:
        # An asynchronous kernel (CPU CropAndResize) records no compute event: its
        # allocations go under its op's name, its time under the executor's ProcessAsync.
        kind = type_of.get(op) or f"{op.rsplit('/', 1)[-1]} (async, untimed)"
        for table, key in ((by_type, kind), (by_scope, _scope(op, scope_depth))):
            table[key]["alloc_bytes"] += size
            table[key]["allocs"] += 1
    for table in (by_type, by_scope):
        for row in table.values():
            for k in row:
                row[k] /= runs
    op_ms = sum(row["ms"] for row in by_type.values())
    return dict(by_type), dict(by_scope), op_ms


def profile_ops(fn, runs=5, warmup=2, scope_depth=3, logdir=None):
    """Calls fn() `warmup` times untraced, then `runs` times under the TF profiler, and
    aggregates the trace (see the module docstring). logdir keeps the trace for TensorBoard;
    by default it goes to a temporary folder that is removed."""
    for _ in range(warmup):
        fn()
    keep = logdir is not None
    logdir = logdir or tempfile.mkdtemp(prefix="tfdet_profile_")
    try:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(runs):
            fn()
        wall = (time.perf_counter() - start) * 1000.0 / runs
        tf.profiler.experimental.stop()
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / runs
        paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        if not paths:
            raise RuntimeError(f"profile_ops: the profiler wrote no trace under {logdir}")
        by_type, by_scope, op_ms = parse_trace(max(paths, key=os.path.getmtime), runs,
                                               scope_depth)
    finally:
        if not keep:
            shutil.rmtree(logdir, ignore_errors=True)
    return {"runs": runs, "wall_ms": wall, "op_ms": op_ms, "minor_faults": faults,
            "by_type": by_type, "by_scope": by_scope}


def format_profile(profile, top=20):
    """Markdown tables of the `top` op types and scopes by time, and the top allocators."""
    lines = [f"{profile['runs']} traced runs: wall {profile['wall_ms']:.1f} ms per run, op time "
             f"{profile['op_ms']:.1f} ms (summed over threads), "
             f"{profile['minor_faults']:.0f} minor page faults per run", ""]

    def table(title, rows, key):
        lines.extend([f"| {title} | ms / run | share of op time | calls | MB allocated | "
                      "allocations |", "| --- | --- | --- | --- | --- | --- |"])
        total = max(profile["op_ms"], 1e-9)
        for name, r in sorted(rows.items(), key=lambda kv: -kv[1][key])[:top]:
            lines.append(f"| `{name}` | {r['ms']:.1f} | {100 * r['ms'] / total:.1f}% | "
                         f"{r['calls']:.0f} | {r['alloc_bytes'] / 2**20:.1f} | "
                         f"{r['allocs']:.0f} |")
        lines.append("")

    table("op type", profile["by_type"], "ms")
    table("scope", profile["by_scope"], "ms")
    table("op type (by allocation)", profile["by_type"], "alloc_bytes")
    return "\n".join(lines)
