"""Entry point: ``python -m emulator serve [options]``."""

import sys

from emulator.cli import main

sys.exit(main())
