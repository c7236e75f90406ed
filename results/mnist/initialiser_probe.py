"""K_z and the epoch-0 reference SGD learning rate of the MNIST CNN at initialisation: the authors'
he_normal convolutions against the glorot_uniform ones our port used before (seeds 0 and 1).

    python results/mnist/initialiser_probe.py   # data from $LIPSCHITZ_LR_DATA, default ../shared/data
"""

import os

import torch

from lipschitz_lr import AdaptiveLR
from lipschitz_lr_experiments.data import TensorBatches, load_dataset
from lipschitz_lr_experiments.models import build_model
from lipschitz_lr_experiments.models.keras_init import keras_initialize

data = load_dataset("mnist", os.environ.get("LIPSCHITZ_LR_DATA", "../shared/data"))
loader = TensorBatches(data.train_images, data.train_labels, 256)
for seed in (0, 1):
    for conv in ("glorot_uniform", "he_normal"):
        torch.manual_seed(seed)
        model = build_model("mnist_cnn", 10)  # he_normal convolutions, glorot_uniform dense layers
        if conv == "glorot_uniform":
            torch.manual_seed(seed)
            keras_initialize(model, conv="glorot_uniform", dense="glorot_uniform")
        record = AdaptiveLR(torch.optim.SGD(model.parameters(), lr=1e-3), model, loader, num_classes=10).history[0]
        print(f"seed {seed} conv {conv:14s} K_z={record.k_z:.2f} epoch-0 SGD lr={record.lr:.2f}")
