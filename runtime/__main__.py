"""`python -m runtime`: the runtime's entry point in the initramfs.

/init runs this file directly (not with -m: runpy costs 0.18 s under TCG).
"""

import gc
import sys

# No garbage collection until the first screen is up: the start is almost all
# imports, which allocate much and free little (the boot-path imports were
# 19-27 % faster on the host: tools/bench_choices.py gc). Re-enabled in
# runtime.state.startup once the menu is drawn.
gc.disable()


def _run() -> int:
    from runtime import bootlog

    bootlog.stage("python-started")
    try:
        from runtime.state.startup import main

        return main()
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # the last line of defence: a message, never a traceback
        bootlog.report_crash(err)
        return 1


sys.exit(_run())
