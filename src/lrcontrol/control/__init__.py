"""Controllers: one method family per module; importing this package registers them all."""

from lrcontrol.control import reactive, schedules  # noqa: F401  (register the controllers)
