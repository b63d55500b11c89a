"""``python -m app`` is ``innerspace``."""

import sys

from app.cli import main

sys.exit(main())
