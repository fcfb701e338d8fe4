"""Artifact storage: response bodies streamed into an object store (S3 and S3-compatible).

The interface is :mod:`agent.artifacts.store` (targets, credentials, the ``ArtifactStore``
port, ``StoreError``); :mod:`agent.artifacts.s3` implements it for S3. This package sits
below the executor and imports only :mod:`agent.core`.
"""
