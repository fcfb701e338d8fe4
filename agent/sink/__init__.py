"""Sinks: where results go.

* :mod:`agent.sink.status` -- the cluster: coalesced merge patches on ``status.nodes``.
* :mod:`agent.sink.stdout` -- the local runner: results collected into the printed manifest.
"""
