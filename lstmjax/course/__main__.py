"""``python -m lstmjax.course`` runs the ``lstmjax-course`` command."""

import sys

from lstmjax.course.cli import main

sys.exit(main())
