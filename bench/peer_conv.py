"""The peers' half of `scripts/benchmark_conv.py`: one convolution (+ bias + ReLU) at a time in
ONNX Runtime (a one-node Conv + Relu model, its default CPU session) and in torch (oneDNN
through OpenMP, channels-last), batch 1, float32. Runs in the peers' venv
(../shared/bench/peers); tfdet never imports torch or onnxruntime.

    $PEERS/venv-torch/bin/python bench/peer_conv.py --threads 2 [--runtimes ort torch]

Shapes as in benchmark_conv.py: PIXELSxINxOUTxKERNEL, square input, stride 1, SAME padding.
"""
import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
from benchmark_conv import RETINANET_512, conv_flops, parse_shapes  # noqa: E402
from paddle_latency import time_runs  # noqa: E402  (the scripts' timing loop)


def ort_call(pixels, cin, cout, k, threads, rng, spin=True):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(rng.random((cout, cin, k, k), np.float32) * 0.01, "W")
    b = numpy_helper.from_array(rng.random(cout, np.float32), "B")
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[k // 2] * 4, kernel_shape=[k, k]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, pixels, pixels])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, pixels, pixels])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not spin:  # ONNX Runtime's threads otherwise spin-wait between parallel sections
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = rng.random((1, cin, pixels, pixels), np.float32)
    return lambda: session.run(None, {"x": x})


def torch_call(pixels, cin, cout, k, threads, rng, spin=True):
    import torch

    torch.set_num_threads(threads)
    conv = torch.nn.Conv2d(cin, cout, k, padding=k // 2).eval().to(memory_format=torch.channels_last)
    x = torch.from_numpy(rng.random((1, cin, pixels, pixels), np.float32)).to(
        memory_format=torch.channels_last)

    def call():
        with torch.no_grad():
            return torch.relu(conv(x))
    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=RETINANET_512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runtimes", nargs="+", default=["ort", "torch"], choices=["ort", "torch"])
    parser.add_argument("--no_spin", action="store_true",
                        help="ONNX Runtime's intra-op threads sleep instead of spin-waiting "
                        "(for torch, set OMP_WAIT_POLICY=PASSIVE instead)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for runtime in args.runtimes:
        make = ort_call if runtime == "ort" else torch_call
        for pixels, cin, cout, k in parse_shapes(args.shapes):
            ms, _ = time_runs(make(pixels, cin, cout, k, args.threads, rng, spin=not args.no_spin), args.warmup, args.runs)
            gflops = conv_flops(pixels, cin, cout, k) / ms / 1e6
            print(f"{runtime:5s} {pixels}x{pixels} {cin}->{cout} k{k}".ljust(28)
                  + f" {ms:8.2f} ms {gflops:6.0f} GFLOP/s", flush=True)


if __name__ == "__main__":
    main()
