"""Kubernetes API plumbing shared by the source, the sink and the secret reads.

* :mod:`agent.kube.client`  -- one configured ``ApiClient``, raw JSON sends, API error texts.
* :mod:`agent.kube.secrets` -- the secret resolver for ``valueFrom.secretKeyRef`` headers.

The watch is the cluster's *source* (:mod:`agent.source.watch`), the status patcher its
*sink* (:mod:`agent.sink.status`); both speak to the API through this package.
"""
