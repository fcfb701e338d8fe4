"""``python -m agent`` is the ``argo-http-agent`` command."""

import sys

from agent.cli import main

sys.exit(main())
