"""Everything one sandbox tenant holds while it runs.

Public API: `SandboxState` with `store` (`store.Store`), `changes` (`changes.ChangeFeed`), `faults`
(`faults.Faults`), `throttle` (`throttle.Throttle`), `delivery` (`notifications.Delivery`), `config`;
`SandboxState.create(config)` builds them and seeds the demo tenant into an empty store.
"""

from __future__ import annotations

from dataclasses import dataclass

from .changes import ChangeFeed
from .store import Store


@dataclass
class SandboxState:
    config: dict
    store: Store
    changes: ChangeFeed
    faults: object
    throttle: object
    delivery: object

    @classmethod
    def create(cls, config) -> SandboxState:
        from .faults import Faults
        from .notifications import Delivery
        from .seed import seed_tenant
        from .throttle import Throttle

        store = Store(config.get("SANDBOX_DB", ":memory:"))
        if config.get("SANDBOX_SEED", True) and store.is_empty():
            seed_tenant(store)
        changes = ChangeFeed()
        state = cls(dict(config), store, changes, Faults(), Throttle(), None)
        state.delivery = Delivery(state)
        return state
