"""Controllers: one method family per module; importing this package registers them all."""

from lrcontrol.control import reactive, schedules  # noqa: F401  (register the controllers)
from lrcontrol.control import clara  # noqa: F401,E402  (CLARA, online)
from lrcontrol.control import alera, hypergradient  # noqa: F401,E402  (ALeRA/SALeRA, hypergradient descent; online)
from lrcontrol.control import finder  # noqa: F401,E402  (lr_from_finder: base LR from an LR range test)
