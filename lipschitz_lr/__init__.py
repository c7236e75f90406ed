"""lipschitz-lr: LipschitzLR, learning rates from a Lipschitz bound of the loss (arXiv:1902.07399).

The public API:

* :class:`AdaptiveLR`, the scheduler (a ``torch.optim.lr_scheduler.LRScheduler``), and its
  :class:`Options` (:mod:`lipschitz_lr.options`);
* :mod:`lipschitz_lr.bounds`, the bound formulas as pure functions;
* :mod:`lipschitz_lr.statistics`, collecting the activation statistics they need (the reference pass), from
  the batches of :mod:`lipschitz_lr.batches`, at the head :mod:`lipschitz_lr.models` finds; the fast
  :mod:`lipschitz_lr.head_hook` and the all-reduce of :mod:`lipschitz_lr.distributed`;
* :mod:`lipschitz_lr.variants`, how each optimiser variant turns the bounds into a learning rate;
* :func:`keras_cross_entropy`, the authors' Keras-clipped training loss (:mod:`lipschitz_lr.losses`).
"""

from . import bounds, statistics, variants
from .adaptive_lr import AdaptiveLR, EpochRecord
from .bounds import LOSSES
from .losses import keras_cross_entropy
from .models import find_head, max_weight_norm
from .options import Options
from .statistics import LipschitzStatistics, collect_statistics
from .variants import VARIANTS

__all__ = [
    "LOSSES",
    "VARIANTS",
    "AdaptiveLR",
    "EpochRecord",
    "LipschitzStatistics",
    "Options",
    "bounds",
    "collect_statistics",
    "find_head",
    "keras_cross_entropy",
    "max_weight_norm",
    "statistics",
    "variants",
]

__version__ = "0.1.0"
