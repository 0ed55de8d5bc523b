"""Leases: several sweeps on one store share its runs instead of each training all of them.

A sweep claims a run before it trains it, by writing a lease (run key, owner, expiry) into the
store's `leases` table inside one `BEGIN IMMEDIATE` transaction, which SQLite serialises across
processes: of two sweeps claiming the same run, exactly one gets it. The other skips it, and waits
at the end until the run is recorded (or its lease expires). So N processes, or N Dask clients, on
one store each train a share, and every run is trained once.

A lease is released when its run is recorded (in the same transaction as the run's INSERT), when the
run fails, and when the sweep exits (Ctrl-C included). A sweep that dies without releasing them
(kill -9, a lost machine) leaves leases that others take over:

- at once, when the owner ran on this machine and its process is gone (the owner id names the host
  and the process id);
- otherwise once the lease expires: a live sweep renews its leases at least every
  `LEASE_SECONDS / 4` (so only a dead or stuck one lets them expire).

Nothing is lost either way: a run taken over resumes from its checkpoint, and recording a run twice
is a no-op (`INSERT OR IGNORE` on the run key), so even a sweep stalled past its expiry only costs
time. The crash-safety rules of the store and the executors are unchanged.

Why a table in the store rather than file locks or a server: the store is already the one thing all
sweeps share (on one machine or, through a shared file system, a cluster), SQLite's write lock
already serialises them, and a lease needs to outlive nothing but the store.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Sequence

from lrcontrol.bench.store import Store

#: a lease not renewed for this long is taken over by other sweeps (a dead owner on this host: at once)
LEASE_SECONDS = float(os.environ.get("LRCONTROL_LEASE_SECONDS", "120"))
#: run keys per SQL query (SQLite's limit on parameters is 32766; keep queries small)
CHUNK = 500


def new_owner() -> str:
    """host/pid/random: unique per sweep call, and says where its process ran."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def owner_is_gone(owner: str) -> bool:
    """True when `owner` ran on this host and its process no longer exists."""
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class Leases:
    """This sweep's leases in `store` (a writable Store)."""

    def __init__(self, store: Store, seconds: float = LEASE_SECONDS) -> None:
        self.store, self.seconds, self.owner = store, seconds, new_owner()
        self.connection = store.connection

    def claim(self, keys: Sequence[str], limit: int) -> tuple[list[str], set[str], set[str]]:
        """Claim up to `limit` of `keys` (in their order) that are neither recorded nor leased by a live
        sweep. Returns (claimed, recorded, held by others)."""
        claimed: list[str] = []
        recorded: set[str] = set()
        held: set[str] = set()
        now = time.time()
        with self.store.transaction():
            self.connection.execute("DELETE FROM leases WHERE expires < ?", (now,))
            for start in range(0, len(keys), CHUNK):
                if len(claimed) >= limit:
                    break
                chunk = list(keys[start : start + CHUNK])
                marks = ", ".join("?" for _ in chunk)
                recorded |= {
                    r[0] for r in self.connection.execute(f"SELECT key FROM runs WHERE key IN ({marks})", chunk)
                }
                owners = dict(self.connection.execute(f"SELECT key, owner FROM leases WHERE key IN ({marks})", chunk))
                for key, owner in list(owners.items()):
                    if owner != self.owner and owner_is_gone(owner):
                        self.connection.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, owner))
                        del owners[key]
                for key in chunk:
                    if len(claimed) >= limit:
                        break
                    if key in recorded:
                        continue
                    if key in owners and owners[key] != self.owner:
                        held.add(key)
                        continue
                    self.connection.execute(
                        "INSERT OR REPLACE INTO leases (key, owner, expires) VALUES (?, ?, ?)",
                        (key, self.owner, now + self.seconds),
                    )
                    claimed.append(key)
        return claimed, recorded, held

    def renew(self) -> None:
        with self.store.transaction():
            self.connection.execute(
                "UPDATE leases SET expires = ? WHERE owner = ?", (time.time() + self.seconds, self.owner)
            )

    def release(self, key: str) -> None:
        with self.store.transaction():
            self.connection.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, self.owner))

    def release_all(self) -> None:
        with self.store.transaction():
            self.connection.execute("DELETE FROM leases WHERE owner = ?", (self.owner,))
