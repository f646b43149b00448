"""`python -m rs5m.browse RUN_DIR`: the same as `rs5m browse RUN_DIR`."""

import sys

from rs5m.browse.cli import main

sys.exit(main())
