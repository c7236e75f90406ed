"""The classical experiments of the 2020 text: full-batch gradient descent with alpha = 0.1 against
alpha = 1/L on scikit-learn's bundled datasets, and the seed article's MNIST softmax regression.

For each problem both runs start from the same random weights, drawn from a standard normal as
the authors' code does (numpy ``randn``: ``Logistic regression.ipynb``, ``Softmax regression.ipynb``
and ``paper/KDD/code/softmax_main.py`` in yrahul3910/lipschitz-learning-rate). The multi-class sets
are split as in ``Softmax regression.ipynb`` (``train_test_split(x, y, train_size=0.7)``): the
descent and ``L`` use the 70% training rows, the accuracy is measured on the held-out 30%; this is
also what the 2020 tables' ``1/L`` values imply. We report the iterations until the training loss
first drops below the threshold T_L, the final loss and the accuracy after N epochs. Conventions
we chose where the text and code are silent are listed in ``CHOICES`` and in the results file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lipschitz_lr import AdaptiveLR
from lipschitz_lr.bounds import linear_regression_bound, logistic_regression_bound, softmax_regression_bound

from .data import DataSplits, TensorBatches, load_dataset

logger = logging.getLogger(__name__)

CHOICES = (
    "An intercept column of ones is appended before scaling; it is scaled like every other column.",
    "Binary sets: each feature column is divided by its sum (the text's 'columns sum to 1').",
    "Iris and digits: raw features (the text scales only the binary sets); MNIST: standardised.",
    "Initial weights: standard normal (the authors' numpy randn), torch seed 0, the same for both learning rates.",
    "Iris and digits: a 70/30 split (sklearn train_test_split, random_state=0, not stratified; the authors' "
    "split had no seed); L and the loss curve on the training rows, accuracy on the held-out rows. MNIST: "
    "the official 60,000/10,000 split. The binary sets: accuracy on the training rows (no split in the text).",
    "Linear regression: K (the bound on ||w||) is the norm of the least-squares solution; T_L is 1.01 x "
    "the least-squares loss (the text gives no threshold for it).",
)


@dataclass
class ClassicalResult:
    problem: str
    dataset: str
    lr_name: str
    lr: float
    lipschitz: float
    epochs: int
    threshold: float
    iterations_to_threshold: int | None
    final_loss: float
    final_accuracy: float | None
    loss_curve: list[float]
    accuracy_curve: list[float] | None


def _with_intercept(x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((x.shape[0], 1))])


def _column_sum_scaled(x: np.ndarray) -> np.ndarray:
    sums = x.sum(axis=0)
    return x / np.where(sums == 0, 1.0, sums)


def _initial_weights(*shape: int) -> torch.Tensor:
    """Standard-normal initial weights (the authors' ``np.random.randn``), seed 0, float64."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _descend(loss_fn, accuracy_fn, w0: torch.Tensor, lr: float, epochs: int, threshold: float):
    """Full-batch gradient descent; the curves hold the value before each step and after the last."""
    w = w0.clone().requires_grad_(True)
    losses: list[float] = []
    accuracies: list[float] = []
    for _ in range(epochs + 1):
        loss = loss_fn(w)
        losses.append(float(loss.detach()))
        if accuracy_fn is not None:
            accuracies.append(accuracy_fn(w.detach()))
        if len(losses) == epochs + 1:
            break
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= lr * grad
    hit = next((i for i, value in enumerate(losses) if value < threshold), None)
    return hit, losses, (accuracies or None)


def _compare(problem, dataset, loss_fn, accuracy_fn, lipschitz, w0, epochs, threshold) -> list[ClassicalResult]:
    results = []
    for name, lr in (("alpha=0.1", 0.1), ("alpha=1/L", 1.0 / lipschitz)):
        hit, losses, accuracies = _descend(loss_fn, accuracy_fn, w0, lr, epochs, threshold)
        final_accuracy = accuracies[-1] if accuracies else None
        results.append(
            ClassicalResult(
                problem,
                dataset,
                name,
                lr,
                lipschitz,
                epochs,
                threshold,
                hit,
                losses[-1],
                final_accuracy,
                losses,
                accuracies,
            )
        )
    return results


def logistic(dataset: str, x_raw: np.ndarray, labels: np.ndarray, epochs: int, threshold: float):
    x = torch.tensor(_column_sum_scaled(_with_intercept(x_raw)))
    y = torch.tensor(labels, dtype=torch.float64)
    w0 = _initial_weights(x.shape[1])

    def loss(w):
        return F.binary_cross_entropy_with_logits(x @ w, y)

    def accuracy(w):
        return float(((x @ w > 0).double() == y).double().mean())

    return _compare("logistic", dataset, loss, accuracy, logistic_regression_bound(x.numpy()), w0, epochs, threshold)


def train_test_split_70_30(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """The authors' ``train_test_split(x, y, train_size=0.7)`` with a fixed seed: x_train, x_test, y_train, y_test."""
    from sklearn.model_selection import train_test_split

    return tuple(train_test_split(x, labels, train_size=0.7, random_state=0))


def softmax(
    dataset: str,
    x_raw: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    threshold: float,
    standardise: bool = False,
    held_out: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Full-batch softmax regression on ``(x_raw, labels)``; accuracy on ``held_out`` rows when given
    (else on the training rows). ``standardise`` uses the training rows' mean and std for both."""
    x_test_raw, test_labels = held_out if held_out is not None else (x_raw, labels)
    if standardise:
        mean, std = x_raw.mean(axis=0), np.where(x_raw.std(axis=0) == 0, 1.0, x_raw.std(axis=0))
        x_raw, x_test_raw = (x_raw - mean) / std, (x_test_raw - mean) / std
    x = torch.tensor(_with_intercept(x_raw))
    y = torch.tensor(labels, dtype=torch.long)
    x_test = torch.tensor(_with_intercept(x_test_raw))
    y_test = torch.tensor(test_labels, dtype=torch.long)
    k = int(max(labels.max(), test_labels.max())) + 1
    w0 = _initial_weights(x.shape[1], k)

    def loss(w):
        return F.cross_entropy(x @ w, y)

    def accuracy(w):
        return float(((x_test @ w).argmax(dim=1) == y_test).double().mean())

    return _compare("softmax", dataset, loss, accuracy, softmax_regression_bound(x.numpy(), k), w0, epochs, threshold)


def linear(dataset: str, x_raw: np.ndarray, target: np.ndarray, epochs: int):
    x_np = _with_intercept(x_raw)
    solution, *_ = np.linalg.lstsq(x_np, target, rcond=None)
    best = float(np.mean((x_np @ solution - target) ** 2) / 2)
    x = torch.tensor(x_np)
    y = torch.tensor(target, dtype=torch.float64)
    w0 = _initial_weights(x.shape[1])

    def loss(w):
        return 0.5 * torch.mean((x @ w - y) ** 2)

    bound = linear_regression_bound(x_np, target, weight_bound=float(np.linalg.norm(solution)))
    return _compare("linear", dataset, loss, None, bound, w0, epochs, 1.01 * best)


def mnist_softmax_seed_article(data: DataSplits, epochs: int = 50) -> list[dict[str, Any]]:
    """Softmax regression on MNIST (``data``, from :func:`load_dataset`), batch 100, random-normal init:
    fixed 0.1, exponential decay (x0.9 every 1000 steps) and LipschitzLR (AdaptiveLR on the one linear layer)."""
    x_train = data.train_images.flatten(1)
    x_test = data.test_images.flatten(1)
    rows = []
    for name in ("fixed 0.1", "exponential decay", "LipschitzLR"):
        torch.manual_seed(0)
        model = nn.Linear(784, 10)
        nn.init.normal_(model.weight)
        nn.init.normal_(model.bias)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = TensorBatches(
            x_train, data.train_labels, 100, shuffle=True, generator=torch.Generator().manual_seed(0)
        )
        step_schedule = torch.optim.lr_scheduler.StepLR(optimizer, 1000, 0.9) if name == "exponential decay" else None
        adaptive = (
            AdaptiveLR(optimizer, model, TensorBatches(x_train, data.train_labels, 100), num_classes=10)
            if name == "LipschitzLR"
            else None
        )
        lrs = []
        for _ in range(epochs):
            lrs.append(optimizer.param_groups[0]["lr"])
            for xb, yb in loader:
                optimizer.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                optimizer.step()
                if step_schedule is not None:
                    step_schedule.step()
            if adaptive is not None:
                adaptive.step()
        with torch.no_grad():
            accuracy = float((model(x_test).argmax(dim=1) == data.test_labels).double().mean())
        rows.append(
            {"schedule": name, "epochs": epochs, "test_accuracy": accuracy, "first_lr": lrs[0], "last_lr": lrs[-1]}
        )
        logger.info("MNIST softmax regression, %s: test accuracy %.4f", name, accuracy)
    return rows


def run_all(out_dir: Path, data_dir: str | Path | None = None, mnist_epochs: int = 50) -> dict[str, Any]:
    from sklearn import datasets

    cancer = datasets.load_breast_cancer()
    iris = datasets.load_iris()
    two_classes = iris.target < 2
    digits = datasets.load_digits()
    diabetes = datasets.load_diabetes()
    results: list[ClassicalResult] = []
    results += logistic("breast cancer", cancer.data, cancer.target, 1000, 0.69)
    results += logistic("iris (classes 0, 1)", iris.data[two_classes], iris.target[two_classes], 1000, 0.69)
    for name, bunch in (("iris", iris), ("digits", digits)):
        x_train, x_test, y_train, y_test = train_test_split_70_30(bunch.data, bunch.target)
        results += softmax(name, x_train, y_train, 200, 0.2, held_out=(x_test, y_test))
    mnist = load_dataset("mnist", data_dir)
    results += softmax(
        "MNIST",
        mnist.train_images.flatten(1).double().numpy(),
        mnist.train_labels.numpy(),
        200,
        0.2,
        standardise=True,
        held_out=(mnist.test_images.flatten(1).double().numpy(), mnist.test_labels.numpy()),
    )
    results += linear("diabetes", diabetes.data, diabetes.target, 1000)
    article = mnist_softmax_seed_article(mnist, mnist_epochs)
    report = {"choices": list(CHOICES), "full_batch": [asdict(r) for r in results], "mnist_softmax_sgd": article}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "classical.json").write_text(json.dumps(report, indent=1))
    (out_dir / "classical.md").write_text(markdown(report))
    print(markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| problem | data | learning rate | lr value | L | epochs | T_L | iterations to T_L | final loss | "
        "final accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["full_batch"]:
        hit = r["iterations_to_threshold"] if r["iterations_to_threshold"] is not None else "not reached"
        acc = f"{r['final_accuracy']:.4f}" if r["final_accuracy"] is not None else "-"
        lines.append(
            f"| {r['problem']} | {r['dataset']} | {r['lr_name']} | {r['lr']:.4g} | {r['lipschitz']:.4g} | "
            f"{r['epochs']} | {r['threshold']:.4g} | {hit} | {r['final_loss']:.4g} | {acc} |"
        )
    lines += [
        "",
        "MNIST softmax regression, mini-batch SGD (batch 100, random-normal init):",
        "",
        "| schedule | epochs | test accuracy | first lr | last lr |",
        "|---|---|---|---|---|",
    ]
    for r in report["mnist_softmax_sgd"]:
        lines.append(
            f"| {r['schedule']} | {r['epochs']} | {r['test_accuracy']:.4f} | {r['first_lr']:.4g} | {r['last_lr']:.4g} |"
        )
    lines += ["", "Conventions chosen where the paper is silent:", ""] + [f"- {c}" for c in report["choices"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_all(Path("results/classical"))
