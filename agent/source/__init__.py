"""Sources: where tasksets come from, turned into :class:`~agent.core.refs.TaskSetSnapshot`.

* :mod:`agent.source.watch`    -- the cluster: list + watch WorkflowTaskSets (resume, 410).
* :mod:`agent.source.manifest` -- a WorkflowTaskSet manifest file (``argo-http-agent local``).
"""
