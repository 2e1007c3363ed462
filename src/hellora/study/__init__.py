"""Small-scale studies on MoE models whose experts hellora trains itself (the demo and the proxy study)."""

from hellora.utils.quiet import quiet_import_chatter

# the study's spawned workers import this package (to unpickle their task) before anything imports torchao, and
# never pass through the CLI's logging setup
quiet_import_chatter()
