"""``python -m agent`` is the ``argo-http-agent`` command."""

import sys

from agent.service.cli import main

if __name__ == "__main__":  # not when a worker process re-imports the main module
    sys.exit(main())
