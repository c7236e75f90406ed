"""Shared by the tests of AdaptiveLR's modules: a small BatchNorm network, its data, one training epoch, the numpy
references of the statistics and the rates, and scheduler builders."""

import copy
import math

import numpy as np
import torch
from torch import nn

from lipschitz_lr import AdaptiveLR

K_CLASSES = 4

#: The paper's rule, unguarded: the tests of its formulas (the library's defaults add the curvature rule and the
#: safeguards, tested on their own).
PAPER = {"rule": "paper", "max_growth": None, "backoff": None}


def make_model(seed=0, d_in=6, hidden=16):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(d_in, hidden), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Dropout(0.3), nn.Linear(hidden, K_CLASSES)
    )
    with torch.no_grad():
        model[2].running_mean.uniform_(-0.5, 0.5)
        model[2].running_var.uniform_(0.5, 2.0)
        model[2].weight.uniform_(0.5, 1.5)
        model[2].bias.uniform_(-0.5, 0.5)
    return model


def make_data(n_batches=4, m=8, last=5, d_in=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = [m] * (n_batches - 1) + [last]
    return [(torch.randn(s, d_in, generator=g) * 2, torch.randint(0, K_CLASSES, (s,), generator=g)) for s in sizes]


def train_epoch(model, optimizer, data):
    model.train()
    for x, y in data:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)


def numpy_statistics(model, data, batchnorm="batch"):
    """Loop over batches in numpy: the forward of Linear-ReLU-BN-(Dropout off)-[head], BN normalising by each
    batch's own mean and (biased) variance (``"batch"``; a one-row batch by the running ones) or by the
    running ones (``"running"``, the eval pass)."""
    sd = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    k_z = s = 0.0
    for x, _ in data:
        h = np.maximum(x.double().numpy() @ sd["0.weight"].T + sd["0.bias"], 0.0)
        mean, var = sd["2.running_mean"], sd["2.running_var"]
        if batchnorm == "batch" and h.shape[0] > 1:
            mean, var = h.mean(axis=0), h.var(axis=0)
        a = (h - mean) / np.sqrt(var + 1e-5) * sd["2.weight"] + sd["2.bias"]
        k_z = max(k_z, math.sqrt(float((a**2).sum())))
        s = max(s, math.sqrt(float((a**4).sum())))
    max_wt = max(math.sqrt(float((v**2).sum())) for k, v in sd.items() if "num_batches" not in k)
    return k_z, s, max_wt


def numpy_lrs(
    stats, variant, m, lam, x=None, beta1=0.9, beta2=None, eps=1e-7, bias_correction=False, momentum_seed="value"
):
    beta2 = beta2 if beta2 is not None else (0.9 if variant == "rmsprop" else 0.999)
    c = (K_CLASSES - 1) / (K_CLASSES * m)
    k1 = k2 = 0.0
    n = 0
    lrs = []
    for epoch, (k_z, s, wt) in enumerate(stats):
        big_k = c * k_z + lam * wt
        big_s = c * c * s + 2 * lam * wt * c * k_z
        if epoch == 0 and x is not None:
            if variant == "momentum":
                k1 = x if momentum_seed == "value" else 1 / x  # the authors' code: `K1 = x; return x`
            lrs.append(x)
            continue
        n += 1
        k1 = beta1 * k1 + (1 - beta1) * big_k
        k2 = beta2 * k2 + (1 - beta2) * big_s
        if variant == "sgd":
            lrs.append(1 / big_k)
        elif variant == "momentum":
            lrs.append(1 / k1)
        else:
            hat1, hat2 = k1, k2
            if bias_correction:
                hat1, hat2 = k1 / (1 - beta1**n), k2 / (1 - beta2**n)
            lrs.append((math.sqrt(hat2) + eps) / (k_z if variant == "rmsprop" else hat1))
    return lrs


def _build(**overrides):
    model = overrides.pop("model", None) or make_model()
    opt = overrides.pop("optimizer", None) or torch.optim.SGD(model.parameters(), lr=0.1)
    loader = overrides.pop("loader", make_data())
    kwargs = {"num_classes": K_CLASSES, **overrides}
    return AdaptiveLR(opt, model, loader, **kwargs)


def _trained(variant="momentum", epochs=2):
    data = make_data()
    model = make_model(seed=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, dampening=0.9)
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, variant=variant, initial_lr=0.1)
    for _ in range(epochs):
        train_epoch(model, opt, data)
        sched.step()
    return data, model, opt, sched


def _hook_run(finder_batches=0, steps_per_period=None):
    """Hook mode on a small model: optionally an LR-finder-like loop first (another optimizer on the
    same model, weights restored afterwards, as torch-lr-finder's reset()), then one epoch."""
    data = make_data(n_batches=6, m=8, last=8)
    model = make_model(seed=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = AdaptiveLR(opt, model, data, num_classes=K_CLASSES, statistics="hook", batch_size=8, **PAPER)
    norms: list[float] = []  # the norm of each training batch's head input, as the scheduler's hook saw it
    model[-1].register_forward_hook(lambda m, inputs, out: norms.append(float(inputs[0].detach().double().norm())))
    if finder_batches:
        saved = copy.deepcopy(model.state_dict())
        finder_opt = torch.optim.SGD(model.parameters(), lr=10.0)  # large steps: large activations
        model.train()
        for x, y in (data * 3)[:finder_batches]:
            finder_opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            finder_opt.step()
        model.load_state_dict(saved)
    norms.clear()
    torch.manual_seed(5)  # the same dropout masks in the epoch whatever ran before
    model.train()
    for i, (x, y) in enumerate(data):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if steps_per_period and (i + 1) % steps_per_period == 0:
            sched.step()
    if not steps_per_period:
        sched.step()
    return sched, norms
