"""The `lrcontrol` command line. Each command group lives in its own module and registers on `app`."""

from __future__ import annotations

# The order of these imports is the order of the commands in `lrcontrol --help`.
from lrcontrol.cli import (
    bench,  # noqa: F401,E402  (registers: run, sweep)
    store,  # noqa: F401,E402  (registers: summary, export)
)

# isort: split
from lrcontrol.cli import (
    find_lr,  # noqa: F401,E402  (registers: find-lr)
    learn,  # noqa: F401,E402  (registers: the learn sub-app: learn train, learn evaluate)
    methods,  # noqa: F401,E402  (registers: methods, spec)
    report,  # noqa: F401,E402  (registers: report, plot)
    select,  # noqa: F401,E402  (registers: the select sub-app and select build)
    select_auto,  # noqa: F401,E402  (registers: select train, select explain)
    select_evaluate,  # noqa: F401,E402  (registers: select evaluate)
    select_features,  # noqa: F401,E402  (registers: select features)
    select_race,  # noqa: F401,E402  (registers: select race)
    tasks,  # noqa: F401,E402  (registers: tasks)
    tune,  # noqa: F401,E402  (registers: tune)
)
from lrcontrol.cli.common import app


def main() -> None:
    app()


__all__ = ["app", "main"]
