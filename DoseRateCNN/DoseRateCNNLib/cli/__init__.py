"""DoseRateCNN sub-commands of the ``deepdosimetry`` command (argparse only; the work is in the library modules)."""
