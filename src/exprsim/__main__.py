"""``python -m exprsim`` runs the CLI."""

import sys

from exprsim.cli import main

sys.exit(main())
