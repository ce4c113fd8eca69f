"""A peer CPU face detector's latency, to set beside BlazeFace's (scripts/paddle_latency.py)
in one sitting: the Ultra-Light-Fast-Generic-Face-Detector-1MB "version-slim" network (the
RFB-320 model's slim edition, Linzaer 2019: a MobileNet-like body of 13 conv / depthwise
blocks on 16-256 channels, SSD heads on the stride-8, 16, 32 and 64 maps with 3 / 2 / 2 / 3
priors per cell, its softmax and box decoding inside the model, as that project exports
it) transcribed in PyTorch with random weights, exported to ONNX (opset 17, any input size)
and timed in ONNX Runtime on one S x S float input, batch 1; then with NMS at BlazeFace's test
settings (score > 0.01, the 5000 best, IoU 0.3, 750 kept; torchvision.ops.nms). Runs in the
peers' venv (../shared/bench/peers: torch, torchvision, onnxruntime). It lives in bench/, not
scripts/: tfdet and its scripts never import torch.

    $PEERS/venv-torch/bin/python bench/peer_face_latency.py --sizes 128 320 640

Prints one JSON line per size: parameters, ORT network median / mean ms, ORT + NMS median ms.
"""
import argparse
import json
import math
import os
import platform
import tempfile

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
from paddle_latency import time_runs  # noqa: E402  (the scripts' timing loop)


def build(torch):
    nn = torch.nn
    base = 16

    def conv_bn(inp, oup, stride):
        return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False),
                             nn.BatchNorm2d(oup), nn.ReLU(inplace=True))

    def conv_dw(inp, oup, stride):
        return nn.Sequential(
            nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
            nn.ReLU(inplace=True), nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup), nn.ReLU(inplace=True))

    def separable(inp, oup):
        return nn.Sequential(nn.Conv2d(inp, inp, 3, 1, 1, groups=inp), nn.ReLU(),
                             nn.Conv2d(inp, oup, 1))

    class Slim(nn.Module):
        def __init__(self):
            super().__init__()
            b = base
            self.body = nn.ModuleList([
                conv_bn(3, b, 2), conv_dw(b, 2 * b, 1), conv_dw(2 * b, 2 * b, 2),
                conv_dw(2 * b, 2 * b, 1), conv_dw(2 * b, 4 * b, 2), conv_dw(4 * b, 4 * b, 1),
                conv_dw(4 * b, 4 * b, 1), conv_dw(4 * b, 4 * b, 1), conv_dw(4 * b, 8 * b, 2),
                conv_dw(8 * b, 8 * b, 1), conv_dw(8 * b, 8 * b, 1), conv_dw(8 * b, 16 * b, 2),
                conv_dw(16 * b, 16 * b, 1)])
            self.sources = (8, 11, 13)  # the stride-8, 16 and 32 maps feed heads
            self.extras = nn.Sequential(
                nn.Conv2d(16 * b, 4 * b, 1), nn.ReLU(),
                nn.Conv2d(4 * b, 4 * b, 3, 2, 1, groups=4 * b), nn.ReLU(),
                nn.Conv2d(4 * b, 16 * b, 1), nn.ReLU())
            channels, priors = (4 * b, 8 * b, 16 * b, 16 * b), (3, 2, 2, 3)
            self.boxes = nn.ModuleList(
                [separable(c, p * 4) for c, p in zip(channels[:3], priors)]
                + [nn.Conv2d(16 * b, 3 * 4, 3, padding=1)])
            self.scores = nn.ModuleList(
                [separable(c, p * 2) for c, p in zip(channels[:3], priors)]
                + [nn.Conv2d(16 * b, 3 * 2, 3, padding=1)])

        def forward(self, x, priors):
            maps, start = [], 0
            for end in self.sources:
                for layer in self.body[start:end]:
                    x = layer(x)
                maps.append(x)
                start = end
            maps.append(self.extras(x))
            n = x.shape[0]
            locs = torch.cat([h(m).permute(0, 2, 3, 1).reshape(n, -1, 4)
                              for h, m in zip(self.boxes, maps)], 1)
            logits = torch.cat([h(m).permute(0, 2, 3, 1).reshape(n, -1, 2)
                                for h, m in zip(self.scores, maps)], 1)
            centre = locs[..., :2] * 0.1 * priors[:, 2:] + priors[:, :2]
            size = torch.exp(locs[..., 2:] * 0.2) * priors[:, 2:]
            return torch.softmax(logits, -1), torch.cat([centre - size / 2,
                                                         centre + size / 2], -1)
    return Slim().eval()


def priors(size):
    """The project's generate_priors for a size x size input: per stride 8 / 16 / 32 / 64,
    ceil(size / stride) cells a side, min boxes (10, 16, 24), (32, 48), (64, 96),
    (128, 192, 256) px; normalised (cx, cy, w, h), clipped to [0, 1]."""
    out = []
    for stride, boxes in zip((8, 16, 32, 64), ((10, 16, 24), (32, 48), (64, 96),
                                               (128, 192, 256))):
        cells = math.ceil(size / stride)
        scale = size / stride
        for j in range(cells):
            for i in range(cells):
                for b in boxes:
                    out.append(((i + 0.5) / scale, (j + 0.5) / scale, b / size, b / size))
    return np.clip(np.asarray(out, np.float32), 0.0, 1.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 320, 640])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    import onnxruntime as ort
    import torch
    import torchvision
    torch.manual_seed(0)
    model = build(torch)
    with torch.no_grad():  # BN statistics and scales away from the identity, as trained ones
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    params = sum(p.numel() for p in model.parameters())
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), platform.machine())
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count()
    # ORT's pool spins after each run; NMS (torch) would then share the cores with spinners.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    torch.set_num_threads(os.cpu_count())
    folder = tempfile.mkdtemp()
    for size in args.sizes:
        p = torch.from_numpy(priors(size))
        x = torch.from_numpy(np.random.default_rng(0).normal(
            0, 1, (1, 3, size, size)).astype(np.float32))
        path = os.path.join(folder, f"slim_{size}.onnx")
        torch.onnx.export(model, (x, p), path, opset_version=17, dynamo=False,
                          input_names=["image", "priors"], output_names=["scores", "boxes"])
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        feed = {"image": x.numpy(), "priors": p.numpy()}
        with torch.no_grad():
            eager_scores, eager_boxes = model(x, p)
        scores, boxes = session.run(None, feed)
        assert np.allclose(scores, eager_scores.numpy(), atol=1e-4)
        assert np.allclose(boxes, eager_boxes.numpy(), atol=1e-4)
        network = time_runs(lambda: session.run(None, feed), args.warmup, args.runs)

        def with_nms():
            s, b = session.run(None, feed)
            face = torch.from_numpy(s[0, :, 1])
            keep = face > 0.01
            face, kept = face[keep], torch.from_numpy(b[0])[keep] * size
            top = torch.topk(face, min(5000, len(face))).indices
            picked = torchvision.ops.nms(kept[top], face[top], 0.3)[:750]
            return kept[top][picked], face[top][picked]
        whole = time_runs(with_nms, args.warmup, args.runs)
        print(json.dumps({"peer": "ultra-light-face version-slim (random weights)",
                          "runtime": f"onnxruntime {ort.__version__}", "input": size,
                          "params": params, "priors": int(p.shape[0]),
                          "network_median_ms": round(network[0], 2),
                          "network_mean_ms": round(network[1], 2),
                          "with_nms_median_ms": round(whole[0], 2), "runs": args.runs,
                          "cpu": f"{cpu}, {os.cpu_count()} cores"}), flush=True)


if __name__ == "__main__":
    main()
