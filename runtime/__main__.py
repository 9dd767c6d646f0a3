"""`python -m runtime`: the runtime's entry point in the initramfs."""

import sys

from runtime.state.startup import main

sys.exit(main())
