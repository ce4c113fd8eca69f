"""torchvision's training step for RetinaNet and Faster R-CNN R50-FPN, to set beside tfdet's
(`python scripts/benchmark_keras.py --model retinanet_r50_fpn --train_batch 2 --sizes
512x512`) in one sitting. Runs in the peers' venv (../shared/bench/peers); it lives in
bench/, not scripts/: tfdet and its scripts never import torch.

    $PEERS/venv-torch/bin/python bench/peer_train_step.py --models retinanet faster_rcnn

The same work as tfdet's step timer: random weights; the zoo's frozen norm (FrozenBatchNorm2d)
and frozen stem + first stage (torchvision's trainable_backbone_layers=3); a batch of 2 random
512 x 512 images with the same two boxes each (classes 3 and 17 of 80 + background);
torchvision's own target assignment and losses; backward; SGD with momentum 0.9 and weight
decay 1e-4 at LR 0, as tfdet's timer: the whole work of a step, with random weights that
stay finite (under frozen identity norms they diverge at any useful LR; RetinaNet's loss was
NaN within 8 steps at 1e-4).
The transform's resize is a no-op (min_size = max_size = 512). Median and mean over --runs
steps after 3 warm-up steps, one JSON line per model.
"""
import argparse
import json
import os
import pathlib
import platform
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
from paddle_latency import time_runs  # noqa: E402  (the scripts' timing loop)


def build(name, torch, torchvision):
    from torchvision.models.detection import FasterRCNN, RetinaNet
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7
    from torchvision.ops.misc import FrozenBatchNorm2d

    body = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    size = dict(min_size=512, max_size=512)
    if name == "retinanet":
        backbone = _resnet_fpn_extractor(body, 3, returned_layers=[2, 3, 4],
                                         extra_blocks=LastLevelP6P7(256, 256))
        return RetinaNet(backbone, num_classes=81, **size)
    return FasterRCNN(_resnet_fpn_extractor(body, 3), num_classes=81, **size)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["retinanet", "faster_rcnn"],
                        choices=["retinanet", "faster_rcnn"])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for name in args.models:
        model = build(name, torch, torchvision).train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=0.0, momentum=0.9, weight_decay=1e-4)
        images = [torch.randn(3, args.size, args.size) for _ in range(args.batch)]
        targets = [{"boxes": torch.tensor([[10.0, 20.0, 200.0, 220.0],
                                           [100.0, 50.0, 300.0, 300.0]]),
                    "labels": torch.tensor([3, 17])} for _ in range(args.batch)]

        def step():
            losses = model(images, targets)
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return float(loss)

        losses = []
        median, mean = time_runs(lambda: losses.append(step()), 3, args.runs)
        loss = losses[-1]
        print(json.dumps({
            "model": f"torchvision {name} R50-FPN", "batch": args.batch, "size": args.size,
            "median_ms": round(median, 1), "mean_ms": round(mean, 1), "runs": args.runs,
            "last_loss": loss,
            "trainable_params": sum(p.numel() for p in params), "threads": args.threads,
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "cpu": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()
