"""`python -m bench` (what `make bench` runs)."""

import sys

from bench.runner import main

sys.exit(main())
