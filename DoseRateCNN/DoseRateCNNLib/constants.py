"""Dose-rate settings the panel and the library share; torch-free, so the Slicer panel imports it at load time."""

METHODS = ("vdk", "led", "mc")
"""Dose-rate methods: voxel dose kernels with density scaling, local energy deposition, Monte Carlo
(the methods of :func:`DosimetryCore.dose.compute_dose_rate`; a test checks they agree)."""
