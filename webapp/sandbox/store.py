"""The sandbox tenant's state: JSON documents by kind and id, in memory, written through to SQLite.

Public API: `Store(path)` (`":memory:"` keeps nothing on disk), and on it:
`get(kind, id)`, `put(kind, id, doc, owner=None)`, `delete(kind, id)`, `all(kind, owner=None)`,
`ids(kind)`, `next_sequence(name)`, `reset()`, `peek(kind, id)` (the stored document itself, read-only),
`version` (grows on every write, for caches), and `lock` — an RLock every multi-step change holds
(`with store.lock:`), so the threaded server never interleaves two writers. Documents are plain dicts; `get`
and `all` return deep copies, so a caller never mutates state by accident.

Kinds used: tenant, app, token, user, photo, contact, person, room, roomList, event, subscription,
deltaToken, transaction. `owner` is the mailbox (user id) a document belongs to, indexed for `all`.

Reads come from memory (a room with 5,000 events must answer a calendarView in milliseconds); every write
goes to SQLite in the same call, so the state survives a restart.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from collections import defaultdict


class Store:
    def __init__(self, path: str = ":memory:"):
        self.lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL") if path != ":memory:" else None
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS docs (kind TEXT, id TEXT, owner TEXT, body TEXT, PRIMARY KEY (kind, id))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER)")
        self._docs: dict[str, dict[str, dict]] = defaultdict(dict)
        self._owners: dict[tuple[str, str], str | None] = {}
        self._by_owner: dict[tuple[str, str | None], set[str]] = defaultdict(set)
        self.version = 0
        for kind, doc_id, owner, body in self._db.execute("SELECT kind, id, owner, body FROM docs"):
            self._remember(kind, doc_id, owner, json.loads(body))

    def _remember(self, kind: str, doc_id: str, owner: str | None, doc: dict) -> None:
        self.version += 1
        previous = self._owners.get((kind, doc_id))
        self._by_owner[(kind, previous)].discard(doc_id)
        self._docs[kind][doc_id] = doc
        self._owners[(kind, doc_id)] = owner
        self._by_owner[(kind, owner)].add(doc_id)

    def peek(self, kind: str, doc_id: str) -> dict | None:
        """The stored document itself, not a copy: for hot read paths that never mutate what they get.
        Writers replace documents whole (`put` stores a fresh copy), so a peeked document never changes."""
        return self._docs[kind].get(doc_id)

    def get(self, kind: str, doc_id: str) -> dict | None:
        doc = self._docs[kind].get(doc_id)
        return copy.deepcopy(doc) if doc is not None else None

    def owner_of(self, kind: str, doc_id: str) -> str | None:
        return self._owners.get((kind, doc_id))

    def put(self, kind: str, doc_id: str, doc: dict, owner: str | None = None) -> dict:
        stored = copy.deepcopy(doc)
        with self.lock:
            self._db.execute(
                "INSERT OR REPLACE INTO docs (kind, id, owner, body) VALUES (?, ?, ?, ?)",
                (kind, doc_id, owner, json.dumps(stored)),
            )
            self._remember(kind, doc_id, owner, stored)
        return copy.deepcopy(stored)

    def delete(self, kind: str, doc_id: str) -> bool:
        with self.lock:
            if doc_id not in self._docs[kind]:
                return False
            self._db.execute("DELETE FROM docs WHERE kind = ? AND id = ?", (kind, doc_id))
            self.version += 1
            owner = self._owners.pop((kind, doc_id), None)
            self._by_owner[(kind, owner)].discard(doc_id)
            del self._docs[kind][doc_id]
            return True

    def all(self, kind: str, owner: str | None = None, *, by_owner: bool = False) -> list[dict]:
        """Every document of `kind`, or with `by_owner=True` only those owned by `owner`."""
        if by_owner:
            ids = self._by_owner.get((kind, owner), set())
            docs = self._docs[kind]
            return [copy.deepcopy(docs[i]) for i in ids if i in docs]
        return [copy.deepcopy(d) for d in self._docs[kind].values()]

    def ids(self, kind: str) -> list[str]:
        return list(self._docs[kind])

    def next_sequence(self, name: str) -> int:
        with self.lock:
            row = self._db.execute("SELECT value FROM sequences WHERE name = ?", (name,)).fetchone()
            value = (row[0] if row else 0) + 1
            self._db.execute("INSERT OR REPLACE INTO sequences (name, value) VALUES (?, ?)", (name, value))
            return value

    def reset(self) -> None:
        with self.lock:
            self._db.execute("DELETE FROM docs")
            self._db.execute("DELETE FROM sequences")
            self._docs.clear()
            self._owners.clear()
            self._by_owner.clear()
            self.version += 1

    def is_empty(self) -> bool:
        return not any(self._docs.values())

    def close(self) -> None:
        self._db.close()
