"""Controllers: one method family per module; importing this package registers them all.

schedules and reactive rules; online adaptation (clara, alera/salera, hypergradient); and
lr_from_finder (the base LR from an LR range test).
"""

from lrcontrol.control import alera, clara, finder, hypergradient, reactive, schedules  # noqa: F401
