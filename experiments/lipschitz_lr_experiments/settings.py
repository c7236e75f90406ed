"""The names of the run settings the command line offers, importable without torch (``lipschitz-lr --help`` and
argument errors answer before torch is loaded): the mixed-precision modes and the environment variables."""

from __future__ import annotations

#: Mixed-precision modes of ``--amp``: off (fp32), bf16 or fp16 (with a GradScaler) autocast.
AMP_MODES = ("off", "bf16", "fp16")
#: ``--device auto`` means this device when the variable is set
#: (:func:`lipschitz_lr_experiments.devices.resolve_device`).
DEVICE_ENV = "LIPSCHITZ_LR_DEVICE"
#: The data directory when ``--data-dir`` is not given (:func:`lipschitz_lr_experiments.data.resolve_data_dir`).
DATA_ENV = "LIPSCHITZ_LR_DATA"
