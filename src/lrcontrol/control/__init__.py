"""Controllers: one method family per module; importing this package registers them all."""

from lrcontrol.control import reactive, schedules  # noqa: F401  (register the controllers)
from lrcontrol.control import alera, hypergradient  # noqa: F401,E402  (ALeRA/SALeRA, hypergradient descent; online)
