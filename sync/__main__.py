"""`python -m sync`: the same CLI as the `fragment-sync` script."""

import sys

from sync.cli import main

sys.exit(main())
