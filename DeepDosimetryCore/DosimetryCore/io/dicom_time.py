"""When a DICOM series was acquired, from its headers (what time integration needs of each time point).

Attributes, in order of preference (PS3.3): AcquisitionDateTime (0008,002A); AcquisitionDate (0008,0022) with
AcquisitionTime (0008,0032); SeriesDate (0008,0021) with SeriesTime (0008,0031). The earliest over the
series' files is taken (CT slices are acquired over seconds; an NM file has one). Local times, as DICOM has them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pydicom

from DosimetryCore.core.acquisition_time import parse_datetime

_PAIRS = (("AcquisitionDate", "AcquisitionTime"), ("SeriesDate", "SeriesTime"))


def _header_datetime(header: pydicom.Dataset) -> datetime | None:
    stamp = str(header.get("AcquisitionDateTime", "") or "").strip()
    if stamp:
        return parse_datetime(stamp.split("+")[0].split("-")[0], "AcquisitionDateTime (0008,002A)")
    for date_name, time_name in _PAIRS:
        date, time = (str(header.get(name, "") or "").strip() for name in (date_name, time_name))
        if date and time:
            digits = time.replace(":", "")
            whole, _, fraction = digits.partition(".")
            text = date + whole.ljust(6, "0") + (f".{fraction}" if fraction else "")
            return parse_datetime(text, f"{date_name}/{time_name}")
    return None


def series_acquisition_datetime(headers: Iterable[pydicom.Dataset]) -> datetime | None:
    """The earliest acquisition time of ``headers`` (see the module docstring), or None when none says."""
    times = [when for when in (_header_datetime(header) for header in headers) if when is not None]
    return min(times) if times else None
