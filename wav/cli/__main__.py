"""`python -m wav.cli ...` is the `wav` command."""

import sys

from wav.cli import main

sys.exit(main())
