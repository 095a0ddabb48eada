"""Workflows this process ran last, kept in memory between transactions.

Loading a workflow from its JSON state costs time in proportion to every step the
ticket ever took; most actions on a ticket come one after another to the same process.
An entry is valid only for the lock version it was saved at: the engine holds the
instance row while it works, so a matching version means nobody changed it meanwhile.
``take`` removes the entry, so a failed transaction (which may have changed the object
half-way) never puts it back.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow


class LiveWorkflows:
    def __init__(self, size: int = 512):
        self.size = size
        self._entries: OrderedDict[int, tuple[int, BpmnWorkflow]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def take(self, instance_id: int, lock_version: int) -> BpmnWorkflow | None:
        with self._lock:
            entry = self._entries.pop(instance_id, None)
            if entry is not None and entry[0] == lock_version:
                self.hits += 1
                return entry[1]
            self.misses += 1
            return None

    def holds(self, instance_id: int) -> bool:
        """Whether an entry exists (maybe for an older version): the caller can skip reading the state."""
        return instance_id in self._entries

    def put(self, instance_id: int, lock_version: int, workflow: BpmnWorkflow) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[instance_id] = (lock_version, workflow)
            self._entries.move_to_end(instance_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
