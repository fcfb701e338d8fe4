"""argo-http-agent: executes Argo Workflows' HTTP and plugin templates from WorkflowTaskSets."""

__version__ = "0.1.0"
