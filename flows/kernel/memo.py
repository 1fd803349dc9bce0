"""A per-process memory of recent results: bounded, the least recently used forgotten first, safe across threads."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """The last `size` results by key. The caller's key must name everything the result depends on."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a memory of recent results holds at least one")
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        # Routes run in a thread pool: one lock around every look-up and store. The work that makes a result runs
        # outside it, so a slow computation never holds up readers of other keys.
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The result kept under the key (now the most recently used), or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> None:
        """Keep a result under the key, forgetting the least recently used beyond the size."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget every result."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
