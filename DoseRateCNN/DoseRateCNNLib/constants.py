"""Dose-rate settings the panel and the library share; torch-free, so the Slicer panel imports it at load time."""

CONVENTIONAL_METHODS = ("vdk", "led", "mc")
"""Dose-rate methods of :func:`DosimetryCore.dose.compute_dose_rate`: voxel dose kernels with density scaling, local
energy deposition, Monte Carlo (a test checks they agree)."""
CNN_METHOD = "cnn"
"""The residual CNN on the VDK dose rate (Li et al.), with an installed model."""
METHODS = (*CONVENTIONAL_METHODS, CNN_METHOD)
