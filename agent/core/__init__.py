"""The core: the values and ports every stage of the data path shares.

A leaf: it imports no other part of the agent and nothing that talks to a network, so
the engine (which imports only this, logging and metrics) stays free of HTTP and
Kubernetes code. ``model`` holds Argo's types, ``refs`` the names of tasksets and nodes,
``ports`` the engine's protocols, ``secrets`` the secret resolver port, ``duration`` Go
durations, ``jsoncodec`` JSON on the hot paths and ``metrics`` the Prometheus objects.
"""
