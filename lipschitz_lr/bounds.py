"""Lipschitz bounds of common losses, as pure functions of activation statistics.

Every bound here is of the form ``K = c * K_z`` (plus an optional weight term), where ``K_z``
bounds the inputs of the network's last linear layer and ``c`` bounds
``|dE/da| * |da/dz|`` for the loss. The scheduler in :mod:`lipschitz_lr.adaptive_lr` turns these
into learning rates; the functions here know nothing about models or data.

A note on faithfulness: the cross-entropy and binary cross-entropy "maxima" below are the
paper's values at a uniform prediction (an initialisation-like point), not true suprema. The true
supremum of ``|softmax(z) - onehot|`` is 1, which would give a far smaller learning rate. We keep
the paper's values because they are what the method is (docs/fidelity.md, "Where we deviate, and why").

References:
    Yedida, Saha, Prashanth. "LipschitzLR: Using theoretically computed adaptive learning rates
    for fast convergence." Applied Intelligence (2021), arXiv:1902.07399.
    Saha, Prashanth, Yedida. "LALR" (MAE and quantile losses), arXiv:2006.13307.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike

from ._checks import finite_nonnegative, integer

__all__ = [
    "LOSSES",
    "LOSS_BOUNDS",
    "CURVATURES",
    "MSE_SIGNS",
    "MSESign",
    "binary_cross_entropy_bound",
    "cross_entropy_bound",
    "linear_regression_bound",
    "logistic_regression_bound",
    "loss_coefficient",
    "mae_bound",
    "mse_bound",
    "quantile_bound",
    "smoothness_bound",
    "second_moment_bound",
    "softmax_regression_bound",
    "weight_decay_bound",
]

MSESign = Literal["plus", "minus"]
#: The two signs of the MSE and linear-regression bounds (:func:`mse_bound`).
MSE_SIGNS: tuple[str, ...] = ("plus", "minus")


def _batch_size(batch_size: int) -> int:
    return integer("batch_size", batch_size, 1)


def cross_entropy_bound(k_z: float, num_classes: int, batch_size: int) -> float:
    r"""Lipschitz bound of softmax + cross-entropy, averaged over a batch.

    .. math::
        K = \frac{k - 1}{k\,m} K_z

    ``(k-1)/k`` is ``|softmax - onehot|`` at a uniform prediction (the paper's value, not a
    supremum), ``1/m`` comes from the batch mean.

    Args:
        k_z: bound on the Frobenius norm of a batch of inputs to the last linear layer.
        num_classes: ``k``, at least 2.
        batch_size: ``m``, the training batch size.

    Example:
        >>> round(cross_entropy_bound(206.695, num_classes=10, batch_size=128), 4)
        1.4533
    """
    k = integer("num_classes", num_classes, 2)
    m = _batch_size(batch_size)
    return (k - 1) / (k * m) * finite_nonnegative("k_z", k_z)


def binary_cross_entropy_bound(k_z: float, batch_size: int) -> float:
    r"""Lipschitz bound of sigmoid + binary cross-entropy, averaged over a batch.

    .. math::
        K = \frac{K_z}{2m}

    The factor 1/2 is ``|sigmoid(z) - y|`` at ``z = 0``, as in the paper.

    Args:
        k_z: bound on the inputs of the last linear layer.
        batch_size: ``m``.

    Example:
        >>> binary_cross_entropy_bound(10.0, batch_size=5)
        1.0
    """
    m = _batch_size(batch_size)
    return finite_nonnegative("k_z", k_z) / (2 * m)


def mse_bound(
    k_z: float,
    batch_size: int,
    output_bound: float,
    target_norm: float,
    sign: MSESign = "plus",
) -> float:
    r"""Lipschitz bound of the mean squared error :math:`\frac{1}{2m}\|a - y\|^2`.

    .. math::
        K = \frac{1}{m}\left(K_a \pm \|y\|\right) K_z

    ``sign="plus"`` is the triangle inequality ``|a - y| <= |a| + |y|`` (the 2020 text, a valid
    bound). ``sign="minus"`` is what the 2019 text and the authors' code compute; it is not an
    upper bound and can be negative (then the scheduler keeps its previous learning rate).

    Args:
        k_z: bound on the inputs of the last linear layer.
        batch_size: ``m``.
        output_bound: ``K_a``, a bound on the norm of the network's outputs.
        target_norm: ``||y||``, the norm of the targets of a batch.
        sign: ``"plus"`` (default) or ``"minus"`` (reference).

    Example:
        >>> mse_bound(2.0, batch_size=4, output_bound=3.0, target_norm=1.0)
        2.0
        >>> mse_bound(2.0, batch_size=4, output_bound=3.0, target_norm=1.0, sign="minus")
        1.0
    """
    return mse_coefficient(batch_size, output_bound, target_norm, sign) * finite_nonnegative("k_z", k_z)


def mse_coefficient(batch_size: int, output_bound: float, target_norm: float, sign: MSESign = "plus") -> float:
    r"""The factor ``c`` in :func:`mse_bound`: :math:`(K_a \pm \|y\|)/m`."""
    m = _batch_size(batch_size)
    k_a = finite_nonnegative("output_bound", output_bound)
    y = finite_nonnegative("target_norm", target_norm)
    return _signed_sum(k_a, y, sign) / m


def mae_bound(k_z: float, batch_size: int, num_outputs: int = 1, average_outputs: bool = False) -> float:
    r"""Lipschitz bound of the mean absolute error (LALR, arXiv:2006.13307).

    .. math::
        K = \frac{K_z}{m} \quad\text{or}\quad K = \frac{K_z}{m\,n_{out}}

    The second form applies when the loss also averages over ``n_out`` outputs.

    Args:
        k_z: bound on the inputs of the last linear layer.
        batch_size: ``m``.
        num_outputs: ``n_out``, used only when ``average_outputs`` is true.
        average_outputs: whether the loss averages over the outputs too.

    Example:
        >>> mae_bound(8.0, batch_size=4)
        2.0
        >>> mae_bound(8.0, batch_size=4, num_outputs=2, average_outputs=True)
        1.0
    """
    m = _batch_size(batch_size)
    n_out = 1
    if average_outputs:
        n_out = integer("num_outputs", num_outputs, 1)
    return finite_nonnegative("k_z", k_z) / (m * n_out)


def quantile_bound(k_z: float, batch_size: int, tau: float) -> float:
    r"""Lipschitz bound of the quantile (pinball) loss at level ``tau``.

    .. math::
        K = \max(\tau, 1 - \tau)\,\frac{K_z}{m}

    Derived as for MAE: the pinball loss has slope ``tau`` or ``tau - 1``. Not stated in any of
    the paper's texts; our derivation.

    Args:
        k_z: bound on the inputs of the last linear layer.
        batch_size: ``m``.
        tau: quantile level in (0, 1).

    Example:
        >>> quantile_bound(8.0, batch_size=4, tau=0.9)
        1.8
    """
    tau = float(tau)
    if not 0.0 < tau < 1.0:
        raise ValueError(f"requires 0 < tau < 1, got tau={tau!r}")
    m = _batch_size(batch_size)
    return max(tau, 1.0 - tau) * finite_nonnegative("k_z", k_z) / m


def weight_decay_bound(weight_decay: float, max_weight_norm: float) -> float:
    r"""Lipschitz bound added by an L2 term :math:`\frac{\lambda}{2}\|w\|^2`.

    .. math::
        K_{L2} = \lambda K_w

    Args:
        weight_decay: ``lambda`` (the paper's tables call it "weight decay").
        max_weight_norm: ``K_w``; the reference takes the largest Frobenius norm of any single
            tensor in the model's state.

    Example:
        >>> weight_decay_bound(1e-3, 43.257)
        0.043257
    """
    return finite_nonnegative("weight_decay", weight_decay) * finite_nonnegative("max_weight_norm", max_weight_norm)


def _required(name: str, value: float | None, loss: str) -> float:
    if value is None:
        raise ValueError(f"loss={loss!r} requires {name}, got {name}=None")
    return value


#: The loss bounds, by name: each maps ``(batch_size, **arguments)`` to the factor ``c`` with
#: ``K_loss = c * K_z``. This is the one place a new loss bound is registered; the names are
#: what ``AdaptiveLR(loss=...)`` accepts (add a test in ``tests/test_bounds.py``).
LOSS_BOUNDS: dict[str, Callable[..., float]] = {
    "cross_entropy": lambda m, num_classes=None, **_: cross_entropy_bound(
        1.0, _required("num_classes", num_classes, "cross_entropy"), m
    ),
    "binary_cross_entropy": lambda m, **_: binary_cross_entropy_bound(1.0, m),
    "mse": lambda m, output_bound=0.0, target_norm=0.0, mse_sign="plus", **_: mse_coefficient(
        m, output_bound, target_norm, mse_sign
    ),
    "mae": lambda m, num_outputs=1, average_outputs=False, **_: mae_bound(1.0, m, num_outputs, average_outputs),
    "quantile": lambda m, tau=None, **_: quantile_bound(1.0, m, _required("tau", tau, "quantile")),
}
#: Loss names accepted by :func:`loss_coefficient` and by ``AdaptiveLR(loss=...)``.
LOSSES: tuple[str, ...] = tuple(LOSS_BOUNDS)


def loss_coefficient(
    loss: str,
    batch_size: int,
    *,
    num_classes: int | None = None,
    tau: float | None = None,
    num_outputs: int = 1,
    average_outputs: bool = False,
    output_bound: float = 0.0,
    target_norm: float = 0.0,
    mse_sign: MSESign = "plus",
) -> float:
    """The factor ``c`` with ``K_loss = c * K_z`` for a loss of :data:`LOSS_BOUNDS` (see the per-loss functions).

    Args:
        loss: one of :data:`LOSSES`.
        batch_size: ``m``.
        num_classes: required for ``"cross_entropy"``.
        tau: required for ``"quantile"``.
        num_outputs, average_outputs: for ``"mae"``.
        output_bound, target_norm, mse_sign: for ``"mse"``.

    Example:
        >>> loss_coefficient("cross_entropy", 128, num_classes=10) == 9 / 1280
        True
    """
    if loss not in LOSS_BOUNDS:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    return LOSS_BOUNDS[loss](
        batch_size,
        num_classes=num_classes,
        tau=tau,
        num_outputs=num_outputs,
        average_outputs=average_outputs,
        output_bound=output_bound,
        target_norm=target_norm,
        mse_sign=mse_sign,
    )


#: ``h`` of each loss's smoothness bound (:func:`smoothness_bound`): the largest eigenvalue of the per-example
#: loss's Hessian in the head's outputs. Softmax cross-entropy: ``diag(p) - p p^T`` has eigenvalues at most 1/2;
#: sigmoid + binary cross-entropy: ``sigmoid'(z) <= 1/4``; MSE ``(1/2)|a - y|^2``: the identity, 1. MAE and the
#: pinball loss have kinks (no curvature bound): None.
CURVATURES: dict[str, float | None] = {
    "cross_entropy": 0.5,
    "binary_cross_entropy": 0.25,
    "mse": 1.0,
    "mae": None,
    "quantile": None,
}


def smoothness_bound(loss: str, k_z: float, batch_size: int, weight_decay: float = 0.0) -> float:
    r"""A bound on the curvature (the gradient's Lipschitz constant) of a batch-mean loss in the last layer's
    weights: beyond the paper, which bounds the gradient itself (:func:`loss_coefficient`).

    .. math::
        L = h\,\frac{K_z^2}{m} + \lambda

    Derivation: the loss of a batch is :math:`\frac{1}{m}\sum_i \ell(W a_i)`; its Hessian in ``W`` is
    :math:`\frac{1}{m}\sum_i H_i \otimes a_i a_i^\top` with :math:`\|H_i\| \le h` (:data:`CURVATURES`), so
    its norm is at most :math:`\frac{h}{m}\sum_i \|a_i\|^2 = \frac{h}{m}\|A\|_F^2 \le \frac{h}{m} K_z^2`,
    ``A`` the batch's head inputs and ``K_z`` the largest batch Frobenius norm; an L2 term
    :math:`\frac{\lambda}{2}\|w\|^2` adds :math:`\lambda`. Gradient descent on an ``L``-smooth loss decreases
    it for every step below ``2/L``; ``1/L`` is the classical choice. Only the last layer is bounded: the layers
    below it are not.

    Args:
        loss: one of :data:`LOSSES` with a curvature (not ``"mae"`` or ``"quantile"``).
        k_z: bound on the Frobenius norm of a batch of inputs to the last linear layer.
        batch_size: ``m``.
        weight_decay: ``lambda`` of an L2 term.

    Example:
        >>> smoothness_bound("cross_entropy", 167.5, batch_size=32)  # torchvision resnet18 at initialisation
        438.37890625
    """
    if loss not in CURVATURES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    curvature = CURVATURES[loss]
    if curvature is None:
        raise ValueError(f"loss={loss!r} is not smooth (a kink at 0): it has no curvature bound; use rule='paper'")
    m = _batch_size(batch_size)
    k = finite_nonnegative("k_z", k_z)
    return curvature * k * k / m + finite_nonnegative("weight_decay", weight_decay)


def second_moment_bound(coefficient: float, k_z: float, s: float, weight_decay: float, max_weight_norm: float) -> float:
    r"""Bound on the squared gradient used by the RMSprop and Adam variants (authors' code).

    .. math::
        S_\ast = c^2 S + 2 \lambda K_w c K_z

    with ``S`` the largest Frobenius norm of the elementwise square of a batch of head inputs and
    ``c`` the loss coefficient (``(k-1)/(k m)`` for cross-entropy). This is the expansion of
    ``(c A + lambda w)^2`` without the ``lambda^2 K_w^2`` term, as coded by the authors.

    Example:
        >>> second_moment_bound(0.5, k_z=2.0, s=4.0, weight_decay=0.0, max_weight_norm=1.0)
        1.0
    """
    c = float(coefficient)
    return c * c * finite_nonnegative("s", s) + 2.0 * weight_decay_bound(
        weight_decay, max_weight_norm
    ) * c * finite_nonnegative("k_z", k_z)


def _signed_sum(a: float, b: float, sign: MSESign) -> float:
    """``a + b`` (``sign="plus"``, the valid bound) or ``a - b`` (``"minus"``, the authors' code)."""
    if sign not in MSE_SIGNS:
        raise ValueError(f"requires sign 'plus' or 'minus', got sign={sign!r}")
    return a + b if sign == "plus" else a - b


def _as_float64(x: ArrayLike | torch.Tensor) -> np.ndarray:
    """A numpy float64 array of ``x``, also of a tensor on any device (a CUDA tensor is copied to the host)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _design_matrix(x: ArrayLike | torch.Tensor) -> np.ndarray:
    array = _as_float64(x)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"requires a non-empty 2-D design matrix (rows x features), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("requires a finite design matrix, got NaN or inf entries")
    return array


def logistic_regression_bound(x: ArrayLike | torch.Tensor) -> float:
    r"""Lipschitz constant of full-batch logistic regression's mean log-loss (2020 text).

    .. math::
        L = \frac{\|X\|_F}{2m}

    Args:
        x: design matrix, ``m`` rows.

    Example:
        >>> logistic_regression_bound([[3.0, 4.0]])
        2.5
    """
    array = _design_matrix(x)
    return float(np.linalg.norm(array) / (2 * array.shape[0]))


def softmax_regression_bound(x: ArrayLike | torch.Tensor, num_classes: int) -> float:
    r"""Lipschitz constant of full-batch softmax regression's mean cross-entropy (2020 text).

    .. math::
        L = \frac{k - 1}{k\,m} \|X\|_F

    Example:
        >>> softmax_regression_bound([[3.0, 4.0]], num_classes=2)
        2.5
    """
    array = _design_matrix(x)
    k = integer("num_classes", num_classes, 2)
    return float((k - 1) / (k * array.shape[0]) * np.linalg.norm(array))


def linear_regression_bound(
    x: ArrayLike | torch.Tensor, y: ArrayLike | torch.Tensor, weight_bound: float, sign: MSESign = "plus"
) -> float:
    r"""Lipschitz bound of full-batch linear regression's loss :math:`\frac{1}{2m}\|Xw - y\|^2`.

    .. math::
        L = \frac{K}{m}\|X^\top X\| \pm \frac{1}{m}\|y^\top X\|

    ``K`` bounds ``||w||``; norms are spectral (matrix) and Euclidean (vector). ``"plus"`` is
    the valid bound (2020 text); ``"minus"`` is what the authors' code computes.

    Example:
        >>> linear_regression_bound([[1.0, 0.0], [0.0, 1.0]], [1.0, 1.0], weight_bound=2.0)
        1.7071067811865475
    """
    array = _design_matrix(x)
    target = _as_float64(y).reshape(array.shape[0], -1)
    m = array.shape[0]
    k = finite_nonnegative("weight_bound", weight_bound)
    gram = float(np.linalg.norm(array.T @ array, ord=2))
    cross = float(np.linalg.norm(target.T @ array, ord=2))
    return _signed_sum(k * gram / m, cross / m, sign)
