"""Serialising booking writes so two requests for one slot give exactly one booking.

Public API: `lock_spaces(space_ids)`: call inside the operation, before the conflict check; held until the
transaction ends.

- PostgreSQL: one transaction-scoped advisory lock per space in the conflict closure, taken in ascending
  order (no deadlocks between writers). Two writes that could conflict always share at least one space of
  their closures, so they queue; writes on unrelated spaces run in parallel. Under READ COMMITTED the
  conflict check that follows the lock sees the other writer's committed rows.
- SQLite: the database has one writer at a time anyway; the transaction begins with BEGIN IMMEDIATE so
  the conflict check and the insert happen under the write lock (see `db_engine.begin_serialised_write`).
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import func, select

from ..db_engine import begin_serialised_write, dialect_name
from ..extensions import db

# First key of the two-int advisory lock form: a namespace so other advisory locks cannot collide.
ADVISORY_NAMESPACE = 0x5253  # "RS"


def lock_spaces(space_ids: Iterable[int]) -> None:
    if dialect_name() == "postgresql":
        for space_id in sorted(set(space_ids)):
            db.session.execute(select(func.pg_advisory_xact_lock(ADVISORY_NAMESPACE, space_id)))
    else:
        begin_serialised_write()
