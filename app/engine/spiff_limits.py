"""Limits of SpiffWorkflow that Hotline lifts.

SpiffWorkflow's task iterators stop descending at depth 1,000 by default, and every
iteration of a BPMN loop adds tree depth (two levels for task + gateway). After ~500
rounds of a loop the next step sat READY at depth 1,001 where ``do_engine_steps`` never
looks, and the ticket silently stopped. Hotline raises the default at import; the engine
also treats a READY step that was not run as an incident (see ``runtime.finish``).
"""
from __future__ import annotations

from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.util.task import TaskIterator

MAX_DEPTH = 10_000_000


def _max_depth_index(init) -> int:
    names = init.__code__.co_varnames[1:init.__code__.co_argcount]
    return names.index("max_depth") - (len(names) - len(init.__defaults__))


def _lift(cls) -> None:
    init = cls.__init__
    defaults = list(init.__defaults__)
    defaults[_max_depth_index(init)] = MAX_DEPTH
    init.__defaults__ = tuple(defaults)


def max_depth(cls=BpmnTaskIterator) -> int:
    """The ``max_depth`` a walk of ``cls`` gets by default in this process now."""
    init = cls.__init__
    return init.__defaults__[_max_depth_index(init)]


_lift(TaskIterator)
_lift(BpmnTaskIterator)
