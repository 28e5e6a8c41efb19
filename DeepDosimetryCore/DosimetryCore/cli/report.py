"""Sub-command ``report`` of the ``deepdosimetry`` command."""

from __future__ import annotations

import argparse

from DosimetryCore import io
from DosimetryCore.core.provenance import record
from DosimetryCore.evaluation.report import write_report
from DosimetryCore.io.labels import label_names, segment_names
from DosimetryCore.io.outputs import check_outputs


def parse_method(spec: str) -> tuple[str, str]:
    """``"NAME=PATH"`` -> ``(NAME, PATH)``; ValueError for a missing ``=``, name or path."""
    name, separator, path = spec.partition("=")
    if not separator or not name.strip() or not path.strip():
        raise ValueError(f"--method: expected NAME=PATH (e.g. dlpvc=pvc.nrrd), got {spec!r}")
    return name.strip(), path.strip()


def _run_report(arguments: argparse.Namespace) -> int:
    methods: dict[str, str] = {}
    for spec in arguments.method:
        name, path = parse_method(spec)
        if name in methods:
            raise ValueError(f"--method: {name!r} is given twice")
        methods[name] = path
    check_outputs({"--truth": arguments.truth, "--labels": arguments.labels, **methods}, {}, {"--out": arguments.out})
    truth = io.read_image(arguments.truth)
    estimates = {name: io.read_image(path) for name, path in methods.items()}
    labelmap = io.read_image(arguments.labels) if arguments.labels else None
    names = segment_names(labelmap, label_names(labelmap)) if labelmap is not None else None
    files = {"truth": arguments.truth, **methods} | ({"labels": arguments.labels} if arguments.labels else {})
    provenance = record("deepdosimetry report", inputs=files, methods=methods, labels=arguments.labels)
    title = arguments.title or f"truth: {arguments.truth}"
    paths = write_report(arguments.out, truth, estimates, labelmap, names, provenance=provenance, title=title)
    print(f"wrote {', '.join(str(path) for path in paths.values())}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report`` to the ``deepdosimetry`` command."""
    report = subparsers.add_parser(
        "report",
        help="metrics (SSIM, NRMSE, VAA, AD, RC), a comparison figure and a Slicer scene of methods vs a truth",
    )
    report.add_argument("--truth", required=True, help="ground-truth image (e.g. activity in Bq/mL)")
    report.add_argument(
        "--method", required=True, action="append", metavar="NAME=PATH",
        help="an estimate to evaluate, on the truth's grid; repeat for each method",
    )
    report.add_argument("--labels", help="labelmap on the truth's grid: recovery coefficient per segment")
    report.add_argument("--out", required=True, help="output folder for metrics.csv, report.png/.mrb/.json")
    report.add_argument("--title", help="the case's name on the figure (default: the truth's file name)")
    report.set_defaults(handler=_run_report)
