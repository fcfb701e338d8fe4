"""Imported once by the supervisor's fork server, before it forks any worker.

Workers are forked from a server process that has already imported the whole agent
(kubernetes_asyncio alone is ~60 MiB of Python objects), so every worker shares those pages
with it copy-on-write instead of importing its own copy: about 70 MiB less per worker.
``gc.freeze()`` moves the imported objects out of the collector's reach, so collections in
the workers do not write to (and so un-share) the pages they live on.
"""

import gc

import agent.artifacts.s3  # every worker opens the artifact store: aiobotocore, shared too
import agent.service.agent
import agent.service.supervisor  # noqa: F401

gc.collect()
gc.freeze()
