"""Writes tests/ops/fixtures/deform_conv2d.npz: torchvision.ops.deform_conv2d's outputs and
gradients on small seeded cases (run in a venv with torch + torchvision, e.g. the peers bench's
`$PEERS/venv-torch`; never imported by tfdet or its tests).

    $PEERS/venv-torch/bin/python scripts/make_torchvision_fixtures.py [--output FILE]
    $PEERS/venv-torch/bin/python scripts/make_torchvision_fixtures.py --benchmark

--benchmark: torchvision's side of scripts/benchmark_deform_conv.py (the same shapes and
tensors, its C++ CPU kernel, float32, torch's default threads); prints one JSON line.

Per case (strides, paddings, dilations, offset groups, offsets reaching outside the image,
DCNv1 without a mask, grouped convolution, batch 2): the NCHW inputs, offset, mask, weight, bias, the output, a
seeded cotangent and the gradients of sum(output * cotangent) with respect to input, offset,
mask, weight and bias, all float64 (torchvision's CPU kernel in double precision).
"""
import argparse
import json
import pathlib

import numpy as np
import torch
import torchvision

ROOT = pathlib.Path(__file__).resolve().parents[1]

# name -> (B, Cin, H, W, Cout, kh, kw, stride, padding, dilation, offset groups, mask,
#          offset scale[, conv groups])
CASES = {
    "plain": (2, 4, 7, 9, 3, 3, 3, 1, 1, 1, 1, True, 1.0),
    "stride2": (2, 4, 8, 9, 3, 3, 3, 2, 1, 1, 1, True, 1.5),
    "no_padding_dilated": (1, 4, 9, 10, 2, 3, 3, 1, 0, 2, 1, True, 1.0),
    "padding2_stride2_dilated": (2, 3, 9, 8, 4, 3, 3, (2, 1), 2, (2, 1), 1, True, 1.0),
    "offset_groups": (2, 6, 7, 7, 5, 3, 3, 1, 1, 1, 3, True, 2.0),
    "out_of_range": (2, 4, 6, 7, 3, 3, 3, 1, 1, 1, 2, True, 6.0),
    "dcn_v1": (2, 4, 7, 9, 3, 3, 3, 1, 1, 1, 1, False, 1.5),
    "kernel_1x3": (1, 4, 6, 8, 3, 1, 3, 1, (0, 1), 1, 1, True, 1.0),
    "conv_groups": (2, 8, 7, 8, 6, 3, 3, 1, 1, 1, 2, True, 1.0, 2),
}


def make_case(spec, seed):
    b, cin, h, w, cout, kh, kw, stride, padding, dilation, groups, with_mask, scale = spec[:13]
    conv_groups = spec[13] if len(spec) > 13 else 1
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    rng = np.random.default_rng(seed)
    tensors = {
        "input": rng.normal(size=(b, cin, h, w)),
        "offset": rng.normal(0, scale, size=(b, 2 * groups * kh * kw, ho, wo)),
        "weight": rng.normal(0, 0.3, size=(cout, cin // conv_groups, kh, kw)),
        "bias": rng.normal(0, 0.1, size=(cout,)),
    }
    if with_mask:
        tensors["mask"] = rng.uniform(0, 1, size=(b, groups * kh * kw, ho, wo))
    torch_tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
                     for k, v in tensors.items()}
    out = torchvision.ops.deform_conv2d(
        torch_tensors["input"], torch_tensors["offset"], torch_tensors["weight"],
        torch_tensors["bias"], stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
        mask=torch_tensors.get("mask"))
    cotangent = rng.normal(size=tuple(out.shape))
    (out * torch.tensor(cotangent)).sum().backward()
    arrays = dict(tensors)
    arrays["output"] = out.detach().numpy()
    arrays["cotangent"] = cotangent
    for k, t in torch_tensors.items():
        arrays[f"grad_{k}"] = t.grad.numpy()
    meta = {"stride": [sh, sw], "padding": [ph, pw], "dilation": [dh, dw],
            "groups": conv_groups}
    return arrays, meta


def benchmark(height, width, runs, warmup):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "benchmark_deform_conv", ROOT / "scripts" / "benchmark_deform_conv.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # numpy only at import
    total = 0.0
    with torch.no_grad():
        for i, (channels, h, w, stride) in enumerate(bench.resnet50_dcn_shapes(height, width)):
            x, offset, kernel, mask = bench.case_tensors(channels, h, w, stride, i)
            nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa
            args = (nchw(x), nchw(offset),
                    torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
            m = nchw(mask)
            total += bench.median_ms(lambda: torchvision.ops.deform_conv2d(
                *args, stride=stride, padding=1, mask=m), warmup, runs)
    print(json.dumps({"framework": "torchvision", "op": "deform_conv2d",
                      "input": [height, width], "total_ms": round(total, 1),
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "torchvision": torchvision.__version__}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path,
                        default=ROOT / "tests" / "ops" / "fixtures" / "deform_conv2d.npz")
    parser.add_argument("--benchmark", action="store_true")
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--width", type=int, default=1216)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.benchmark:
        benchmark(args.height, args.width, args.runs, 2)
        return
    args.output.parent.mkdir(parents=True, exist_ok=True)
    arrays, metas = {}, {}
    for seed, (name, spec) in enumerate(CASES.items()):
        case, meta = make_case(spec, seed)
        arrays.update({f"{name}/{k}": v for k, v in case.items()})
        metas[name] = meta
    arrays["meta"] = np.asarray(json.dumps({"cases": metas, "torch": torch.__version__,
                                            "torchvision": torchvision.__version__}))
    np.savez_compressed(args.output, **arrays)
    print(f"wrote {args.output}: {len(CASES)} cases, torchvision {torchvision.__version__}")


if __name__ == "__main__":
    main()
