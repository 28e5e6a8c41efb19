"""The ``deepdosimetry`` command (:mod:`.main`) and the core sub-commands; argparse lives only here
and in each method package's ``cli.py``."""
