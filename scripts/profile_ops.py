"""Op-by-op profile of a SavedModel (TF profiler trace): where the time and the allocations
of one batch-1 call go, after grappler and oneDNN rewrote the graph.

  python scripts/profile_ops.py --saved_model saved_models/X/1 --image IMG.jpg [--runs 5]
      [--top 20] [--scope_depth 3] [--logdir DIR] [--json OUT.json]
Prints markdown tables (op types, scopes, allocations; tfdet.profiling). --logdir keeps the
trace for TensorBoard's profile plugin.
"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("saved_model", None, "SavedModel folder", required=True)
flags.DEFINE_string("image", None, "one JPEG / PNG image", required=True)
flags.DEFINE_string("signature", "serving_encoded", "serving_encoded (bytes in, decoding "
                    "profiled too) or serving_default (decoded uint8 in)")
flags.DEFINE_integer("runs", 5, "traced calls")
flags.DEFINE_integer("warmup", 2, "untraced calls first")
flags.DEFINE_integer("top", 20, "rows per table")
flags.DEFINE_integer("scope_depth", 3, "name parts that make a scope")
flags.DEFINE_string("logdir", None, "keep the trace here")
flags.DEFINE_string("json", None, "write the profile here")


def main(_):
    import tensorflow as tf

    from tfdet.profiling import format_profile, profile_ops

    f = flags.FLAGS
    fn = tf.saved_model.load(f.saved_model).signatures[f.signature]
    data = tf.io.read_file(f.image)
    if f.signature == "serving_encoded":
        call = lambda: fn(encoded_images=data[None])["num_detections"].numpy()  # noqa: E731
    else:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)[None]
        call = lambda: fn(images=image)["num_detections"].numpy()  # noqa: E731
    profile = profile_ops(call, f.runs, f.warmup, f.scope_depth, f.logdir)
    print(f"{os.path.abspath(f.saved_model)} ({f.signature}) on {f.image}\n")
    print(format_profile(profile, f.top))
    if f.json:
        with open(f.json, "w") as out:
            json.dump(profile, out, indent=1)


if __name__ == "__main__":
    app.run(main)
