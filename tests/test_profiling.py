"""tfdet.profiling on a function whose ops and buffers are known by hand."""
import tensorflow as tf

from tfdet.profiling import format_profile, profile_ops


def test_profile_counts_each_op_once_per_run_and_charges_its_output_buffer():
    a, b = tf.random.normal([256, 128]), tf.random.normal([128, 512])

    @tf.function
    def f(a, b):
        with tf.name_scope("outer"):
            product = tf.matmul(a, b, name="product")
            return tf.nn.relu(product + 1.0, name="act")

    profile = profile_ops(lambda: f(a, b).numpy(), runs=3, warmup=1)
    matmul = [k for k in profile["by_type"] if k.endswith("MatMul")]
    assert len(matmul) == 1, sorted(profile["by_type"])
    row = profile["by_type"][matmul[0]]
    assert row["calls"] == 1 and row["allocs"] == 1
    assert row["alloc_bytes"] == 256 * 512 * 4  # the [256, 512] float32 product
    assert profile["by_scope"]["outer/product"]["alloc_bytes"] == 256 * 512 * 4
    assert profile["by_type"]["Relu"]["calls"] == 1
    assert 0 < profile["op_ms"] and profile["runs"] == 3
    text = format_profile(profile, top=2)
    assert text.count(f"| `{matmul[0]}` |") == 2  # in the time and the allocation tables
    assert "| `outer/product` |" in text
