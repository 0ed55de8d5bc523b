import os

import pytest
import torch

# One thread per test process: results are reproducible and xdist workers do not fight over cores.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _store_records(store_path):
    """Each run of a store, keyed by run key, without what legitimately varies (wall times, dates);
    the store is intact and holds every run once."""
    from lrcontrol.bench.store import Store

    with Store(store_path, readonly=True) as db:
        rows = db.records()
        assert db.integrity_ok()
        assert db.query("SELECT count(*) AS n, count(DISTINCT key) AS k FROM runs")[0] == {
            "n": len(rows),
            "k": len(rows),
        }
    out = {}
    for r in map(dict, rows):
        for name in ("wall_time", "finished_at"):
            r.pop(name)
        r["trajectory"].pop("wall_time")
        out[r["key"]] = r
    return out


@pytest.fixture(scope="session")
def comparable():
    """`comparable(store_path)`: a store's runs as records that two equal sweeps agree on exactly."""
    return _store_records
