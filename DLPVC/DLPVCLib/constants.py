"""DL-PVC settings the panel and the library share; torch-free, so the Slicer panel imports it at load time."""

DEFAULT_MODEL = "dlpvc-r2unet"
"""The model :func:`DLPVCLib.correction.load_dlpvc_model` loads by default (R2U-Net, the paper's best architecture)."""

MODEL_NAME_PREFIX = "dlpvc"
"""Models under ``Resources/Models`` whose name starts with this are DL-PVC models."""

DEFAULT_COLLIMATOR = "SIEMENS-MELP"
"""Collimator of the default IY-PVC PSF."""

DEFAULT_SOURCE_DISTANCE_MM = 200.0
"""Distance (mm) from the collimator face at which the default IY-PVC PSF is the system's."""

DEFAULT_FWHM_MM = 18.5
"""Default IY-PVC PSF FWHM (mm, the same along x, y, z).

The system FWHM of the Siemens MELP collimator at 208 keV, 200 mm from the collimator face
(:func:`DosimetryCore.imaging.collimators.collimator_response`, rounded to 0.1 mm; a test checks
it), about the resolution of a 177Lu SPECT reconstructed without resolution modelling (seed 003
measured 21.4 mm for theirs, 8.8 mm with resolution modelling). Use your own system's measured
reconstructed resolution where known.
"""

METHODS = ("dl", "iy")
"""PVC methods: DL-PVC (a trained network) and iterative Yang."""
