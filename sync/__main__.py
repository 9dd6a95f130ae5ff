"""`python -m sync`: the same CLI as the `fragment-sync` script."""

import gc
import sys

# Importing builds what lives until exit (modules, classes): the cyclic collector finds
# no garbage there, and walking it cost ~40 ms of a 0.4 s `run --once`. Frozen, it is
# never walked again.
gc.disable()
try:
    from sync.cli import main
finally:
    gc.freeze()
    gc.enable()

try:
    sys.exit(main())
finally:
    # Exiting would walk every object once more (~50 ms); what is left needs no collector:
    # the state store and connections are closed, and atexit handlers still run.
    gc.freeze()
