"""Workflows this process ran last, kept in memory between transactions.

Loading a workflow from its JSON state costs time in proportion to every step the
ticket ever took; most actions on a ticket come one after another to the same process.
An entry is valid only for the lock version it was saved at: the engine holds the
instance row while it works, so a matching version means nobody changed it meanwhile.
``take`` removes the entry, so a failed transaction (which may have changed the object
half-way) never puts it back. An entry of an older version is handed out too: most of a long
ticket's tasks are the same in the newer state (``catch_up``).

A workflow the cache lets go of (evicted, replaced, or not kept at all) is released, an
outdated one by ``catch_up``, which takes it: its attributes are dropped, which breaks the
workflow <-> task reference cycles, so its thousands of objects are freed at once instead of
waiting for the cyclic garbage collector
(a full collection of a long ticket's leftovers took ~3 ms per cold call, see bench/RESULTS.md).
Only workflows nobody else holds come here: the engine hands out ids and dicts, never the
workflow or its tasks.
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
        self.outdated = 0  # misses with an older version kept (handed out to be caught up)

    def take(self, instance_id: int, lock_version: int) -> tuple[BpmnWorkflow | None, BpmnWorkflow | None]:
        """(the workflow saved at ``lock_version``, None) when this process saved the instance
        last; (None, an older workflow of it) when another process saved it since, which the
        caller brings up to date (``catch_up``) or releases; (None, None) when none is kept."""
        with self._lock:
            entry = self._entries.pop(instance_id, None)
            if entry is not None and entry[0] == lock_version:
                self.hits += 1
                return entry[1], None
            self.misses += 1
            if entry is None:
                return None, None
            self.outdated += 1
            return None, entry[1]

    def holds(self, instance_id: int) -> bool:
        """Whether an entry exists (maybe for an older version): the caller can skip reading the state."""
        return instance_id in self._entries

    def put(self, instance_id: int, lock_version: int, workflow: BpmnWorkflow) -> None:
        if self.size <= 0:
            release(workflow)
            return
        dropped = []
        with self._lock:
            old = self._entries.get(instance_id)
            if old is not None and old[1] is not workflow:
                dropped.append(old[1])
            self._entries[instance_id] = (lock_version, workflow)
            self._entries.move_to_end(instance_id)
            while len(self._entries) > self.size:
                dropped.append(self._entries.popitem(last=False)[1][1])
        for gone in dropped:
            release(gone)


def release(workflow: BpmnWorkflow) -> None:
    """Break the reference cycles of a workflow no one will use again (see the module's doc):
    its attributes and its subprocesses' go, so its tasks (which refer to it, not to each
    other) are freed by reference counting. Using it afterwards fails loudly."""
    for sub in list(workflow.__dict__.get("subprocesses", {}).values()):
        sub.__dict__.clear()
    workflow.__dict__.clear()
