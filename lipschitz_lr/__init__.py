"""lipschitz-lr: LipschitzLR, learning rates from a Lipschitz bound of the loss (arXiv:1902.07399).

The public API:

* :class:`AdaptiveLR`, the scheduler (a ``torch.optim.lr_scheduler.LRScheduler``);
* :mod:`lipschitz_lr.bounds`, the bound formulas as pure functions;
* :mod:`lipschitz_lr.statistics`, collecting the activation statistics they need;
* :mod:`lipschitz_lr.variants`, how each optimiser variant turns the bounds into a learning rate;
* :func:`keras_cross_entropy`, the authors' Keras-clipped training loss (:mod:`lipschitz_lr.losses`).
"""

from . import bounds, statistics, variants
from .adaptive_lr import AdaptiveLR, EpochRecord
from .bounds import LOSSES
from .losses import keras_cross_entropy
from .statistics import LipschitzStatistics, collect_statistics, find_head, max_weight_norm
from .variants import VARIANTS

__all__ = [
    "LOSSES",
    "VARIANTS",
    "AdaptiveLR",
    "EpochRecord",
    "LipschitzStatistics",
    "bounds",
    "collect_statistics",
    "find_head",
    "keras_cross_entropy",
    "max_weight_norm",
    "statistics",
    "variants",
]

__version__ = "0.1.0"
