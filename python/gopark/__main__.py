"""`python -m gopark` is `gopark`."""

import sys

from gopark.cli import main

sys.exit(main())
