"""The engine: what runs when, exactly once, fairly, and what happens to a claim.

* :mod:`agent.engine.scheduler` -- :class:`Engine`, between a source and a sink.
* :mod:`agent.engine.claims`    -- at-most-once: claims in the status before a request.
* :mod:`agent.engine.ownership` -- which member owns which node (rendezvous hashing, fence).
* :mod:`agent.engine.shard`     -- the worker processes of one pod, numbered.

It imports only :mod:`agent.core` (and logging), never HTTP or Kubernetes code: an import
contract in ``pyproject.toml`` checks it.
"""
