"""``python -m lstmjax`` runs the ``lstmjax`` command."""

import sys

from lstmjax.cli import main

sys.exit(main())
