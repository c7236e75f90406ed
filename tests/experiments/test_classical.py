import numpy as np
import pytest
from sklearn import datasets

from lipschitz_lr_experiments.classical import (
    linear,
    logistic,
    markdown,
    mnist_softmax_seed_article,
    softmax,
    train_test_split_70_30,
)
from lipschitz_lr_experiments.data import load_dataset


def test_logistic_breast_cancer_uses_the_closed_form_l():
    cancer = datasets.load_breast_cancer()
    fixed, adaptive = logistic("breast cancer", cancer.data, cancer.target, epochs=50, threshold=0.69)
    assert fixed.lipschitz == adaptive.lipschitz
    x = np.hstack([cancer.data, np.ones((len(cancer.data), 1))])
    x = x / x.sum(axis=0)
    assert adaptive.lr == pytest.approx(2 * len(x) / np.linalg.norm(x))
    assert adaptive.final_loss < fixed.final_loss  # 1/L is far larger than 0.1 on column-scaled data


def test_softmax_and_linear_run_and_render():
    iris = datasets.load_iris()
    rows = softmax("iris", iris.data, iris.target, epochs=20, threshold=0.2)
    diabetes = datasets.load_diabetes()
    rows += linear("diabetes", diabetes.data, diabetes.target, epochs=20)
    assert all(np.isfinite(r.final_loss) for r in rows)
    text = markdown({"full_batch": [r.__dict__ for r in rows], "mnist_softmax_sgd": [], "choices": ["c"]})
    assert "| softmax | iris | alpha=1/L |" in text and "| linear | diabetes |" in text


def test_multiclass_sets_split_70_30_with_standard_normal_weights():
    """Softmax regression.ipynb: train_test_split(train_size=0.7), theta = np.random.randn(...)."""
    iris = datasets.load_iris()
    x_train, x_test, y_train, y_test = train_test_split_70_30(iris.data, iris.target)
    assert (len(x_train), len(x_test)) == (105, 45)
    fixed, adaptive = softmax("iris", x_train, y_train, epochs=5, threshold=0.2, held_out=(x_test, y_test))
    with_intercept = np.hstack([x_train, np.ones((105, 1))])
    assert adaptive.lipschitz == pytest.approx(2 / (3 * 105) * np.linalg.norm(with_intercept))  # L on the 70%
    assert fixed.loss_curve[0] == adaptive.loss_curve[0] > 1.5  # std-1 weights; std 0.01 would start at log 3
    assert all(round(a * 45, 6) == round(a * 45) for a in adaptive.accuracy_curve)  # on the 45 held-out rows


def test_mnist_softmax_seed_article_rows(data_dir):
    data = load_dataset("mnist", data_dir, train_subset=2000, test_subset=500)
    rows = mnist_softmax_seed_article(data, epochs=1)
    assert [r["schedule"] for r in rows] == ["fixed 0.1", "exponential decay", "LipschitzLR"]
    fixed, decay, adaptive = rows
    # 20 steps of batch 100: the x0.9 decay (every 1000 steps) has not started, so the two runs are one
    assert fixed == {**decay, "schedule": "fixed 0.1"} and fixed["first_lr"] == 0.1
    assert np.isfinite(adaptive["first_lr"]) and adaptive["first_lr"] > 0
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
