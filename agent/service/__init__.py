"""The service: the ``argo-http-agent`` command and the process around the data path.

* ``cli`` (subcommands), ``run`` (settings, then one agent or a supervisor), ``agent``
  (one agent's wiring: source, engine, executor, sink, API), ``local`` (the manifest
  runner's wiring), ``supervisor`` (``--processes N``), ``process`` (signals, event loop,
  CPUs), ``api`` (/healthz /readyz /metrics /version), ``settings``, ``logs``.
"""
