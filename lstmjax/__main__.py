"""``python -m lstmjax`` runs the ``lstmjax`` command."""

import sys

from lstmjax.app.cli import main

sys.exit(main())
