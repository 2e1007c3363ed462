"""`python -m hellora.cli`: the same as the `hellora` command."""

import sys

from hellora.cli import main

sys.exit(main())
