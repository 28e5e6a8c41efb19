"""The options every dataset-simulating command shares: a local process pool or Ray (argparse only).

--workers W            parallel processes on this machine (the default backend)
--threads T            torch threads per case
--ray [ADDRESS]        every case a Ray task: a local Ray instance, or the cluster at ADDRESS
--ray-cpus N           CPUs of that local Ray instance
--retries R            attempts after a case fails on Ray
"""

from __future__ import annotations

import argparse
import sys

from DosimetryCore.learning.ray_cases import INSTALL_HINT, CasesFailed, RayOptions, import_ray


def add_parallel_arguments(command: argparse.ArgumentParser) -> None:
    """Add ``--workers``, ``--threads``, ``--ray [ADDRESS]``, ``--ray-cpus`` and ``--retries`` to ``command``."""
    command.add_argument("--workers", type=int, default=1, help="parallel processes on this machine (default 1)")
    command.add_argument(
        "--threads", type=int, default=None,
        help="torch threads per case (default: cores / workers; 1 on Ray); a case is bit-identical for any "
        "backend at the same thread count",
    )  # fmt: skip
    command.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help=f"simulate every case as a Ray task: alone, on a local Ray instance; with ADDRESS (HOST:6379, auto), on "
        f"that cluster, whose nodes share the --out folder at the same path (needs {INSTALL_HINT})",
    )  # fmt: skip
    command.add_argument(
        "--ray-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: every core)"
    )
    command.add_argument("--retries", type=int, default=2, help="Ray: attempts after a case fails (default 2)")


def ray_options(arguments: argparse.Namespace) -> RayOptions | None:
    """The :class:`RayOptions` of ``--ray`` (None without it); ValueError for options that need it or when Ray is
    not installed (imported here, and only with ``--ray``)."""
    if arguments.ray is None:
        if arguments.ray_cpus is not None:
            raise ValueError("--ray-cpus: sizes the local Ray instance of --ray, which is not given")
        return None
    if arguments.workers != 1:
        raise ValueError("--workers: is for the local process pool; with --ray every case is a Ray task")
    if arguments.ray and arguments.ray_cpus is not None:
        raise ValueError(f"--ray-cpus: sizes a local Ray instance, not the cluster at {arguments.ray}")
    try:
        import_ray()
    except ImportError as error:
        raise ValueError(str(error)) from error
    return RayOptions(
        address=arguments.ray or None,
        num_cpus=arguments.ray_cpus,
        threads=arguments.threads or 1,
        retries=arguments.retries,
    )


def case_options(arguments: argparse.Namespace) -> dict:
    """The keyword arguments a dataset writer takes from these options and ``--device``: ``workers``, ``threads``,
    ``ray`` (:func:`ray_options`) and ``device``."""
    return {
        "workers": arguments.workers,
        "threads": arguments.threads,
        "ray": ray_options(arguments),
        "device": arguments.device,
    }


def failed_cases(command: str, error: CasesFailed) -> int:
    """Print the cases that failed on every attempt and return exit status 1."""
    print(f"deepdosimetry {command}: error: {error}", file=sys.stderr)
    return 1
