"""Controllers: one method family per module; importing this package registers them all.

schedules and reactive rules; online adaptation (clara, alera/salera, hypergradient); and
lr_from_finder (the base LR from an LR range test); and everyday practice: the layer-wise trust
ratio, discriminative (per-layer) rates, batch-size rules, LR noise and gradient clipping.
"""

from lrcontrol.control import (  # noqa: F401  (each module registers its methods)
    alera,
    batch,
    clara,
    clipping,
    discriminative,
    finder,
    hf_schedules,
    hypergradient,
    layerwise,
    noise,
    piecewise,
    reactive,
    schedules,
)
