"""Acquisition time of an image and the time after administration (h) that time integration needs.

An image read from DICOM carries when it was acquired (:data:`~DosimetryCore.core.metadata.ACQUISITION_DATETIME_KEY`,
ISO 8601, local time as DICOM gives it); dose rates computed from an activity image keep it
(:func:`carry_acquisition_time`). The administration time is the user's: :func:`parse_datetime` reads it and
:func:`hours_after_administration` gives the time point in hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import SimpleITK as sitk

from .metadata import ACQUISITION_DATETIME_KEY


def parse_datetime(text: str, name: str = "datetime") -> datetime:
    """``text`` as a date and time: ISO 8601 (``2026-11-30T10:15``, ``2026-11-30 10:15:30``) or DICOM's
    ``YYYYMMDDHHMMSS`` (fraction of a second allowed). A time-zone offset is refused: DICOM times are local."""
    value = text.strip()
    try:
        if value.isdigit() or (value[:14].isdigit() and value[14:15] == "."):
            parsed = datetime.strptime(value[:14].ljust(14, "0"), "%Y%m%d%H%M%S")
            fraction = value[15:] if len(value) > 15 else ""
            parsed = parsed.replace(microsecond=int(fraction[:6].ljust(6, "0")) if fraction else 0)
        else:
            parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise ValueError(
            f"{name}: {text!r} is not a date and time (expected e.g. 2026-11-30T10:15 or 20261130101500)"
        ) from error
    if parsed.tzinfo is not None:
        raise ValueError(f"{name}: {text!r} has a time-zone offset; give local times as DICOM does")
    return parsed


def acquisition_datetime(image: sitk.Image) -> datetime | None:
    """When ``image`` was acquired, or None when it does not say."""
    if not image.HasMetaDataKey(ACQUISITION_DATETIME_KEY):
        return None
    return parse_datetime(image.GetMetaData(ACQUISITION_DATETIME_KEY), ACQUISITION_DATETIME_KEY)


def set_acquisition_datetime(image: sitk.Image, when: datetime) -> sitk.Image:
    """Record ``when`` (local, no time zone) as ``image``'s acquisition time; returns ``image``."""
    if when.tzinfo is not None:
        raise ValueError(f"acquisition time {when.isoformat()}: give a local time without time zone")
    image.SetMetaData(ACQUISITION_DATETIME_KEY, when.isoformat(timespec="seconds"))
    return image


def carry_acquisition_time(source: sitk.Image, target: sitk.Image) -> sitk.Image:
    """Copy ``source``'s acquisition time (if any) onto ``target`` (e.g. activity -> its dose rate)."""
    if source.HasMetaDataKey(ACQUISITION_DATETIME_KEY):
        target.SetMetaData(ACQUISITION_DATETIME_KEY, source.GetMetaData(ACQUISITION_DATETIME_KEY))
    return target


def hours_after_administration(acquired: datetime, administered: datetime, name: str = "time point") -> float:
    """Hours from ``administered`` to ``acquired``; an acquisition before the administration is an error."""
    hours = (acquired - administered).total_seconds() / 3600.0
    if not hours > 0:
        raise ValueError(
            f"{name}: acquired {acquired.isoformat()} is not after the administration at {administered.isoformat()}"
        )
    return hours


def hours_from_images(images: Sequence[sitk.Image], administered: datetime, name: str) -> tuple[float, datetime]:
    """Hours after ``administered`` of the first of ``images`` that states its acquisition time (e.g. the
    activity or dose rate, then its CT); an error naming ``name`` when none does."""
    for image in images:
        acquired = acquisition_datetime(image)
        if acquired is not None:
            return hours_after_administration(acquired, administered, name), acquired
    raise ValueError(f"{name}: no acquisition time in its images (not read from DICOM?); give the hours instead")
