"""K_z and the first SGD rate of BatchNorm networks at initialisation: the paper's eval pass against batch statistics.

    python benchmarks/batchnorm_modes.py

For torchvision's resnet18, mobilenet_v3_small and efficientnet_b0 (10 classes, no weights), two random
batches of 16 images of 64x64: K_z of AdaptiveLR's reference pass with ``batchnorm="running"`` (the
paper's eval pass: BatchNorm uses its running statistics, 0 and 1 at initialisation) and with
``batchnorm="batch"`` (the library's default: each batch's own statistics), and the cross-entropy SGD
rate ``1 / ((k-1)/(k m) K_z)`` each gives. The README and ``AdaptiveLR``'s docstring quote this table.
"""

from __future__ import annotations

import torch
import torchvision

from lipschitz_lr import collect_statistics
from lipschitz_lr.bounds import cross_entropy_bound

MODELS = ("resnet18", "mobilenet_v3_small", "efficientnet_b0")
CLASSES, BATCH = 10, 16


def main() -> None:
    print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}; 2 batches of {BATCH} images 64x64")
    print("| model | K_z, running | lr, running | K_z, batch | lr, batch |")
    print("|---|---|---|---|---|")
    for name in MODELS:
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(num_classes=CLASSES)
        g = torch.Generator().manual_seed(0)
        data = [(torch.randn(BATCH, 3, 64, 64, generator=g), None) for _ in range(2)]
        cells = []
        for mode in ("running", "batch"):
            k_z = collect_statistics(model, data, batchnorm=mode).k_z
            cells += [f"{k_z:.3g}", f"{1 / cross_entropy_bound(k_z, CLASSES, BATCH):.3g}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
