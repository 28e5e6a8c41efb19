"""DLPVC: deep-learning partial-volume correction of 177Lu SPECT (Leube et al., J Nucl Med 2024).

- :mod:`DLPVCLib.iterative_yang`: the classical reference, equal to PETPVC's ``--pvc IY``;
- :mod:`DLPVCLib.networks`: the 3D R2U-Net and MONAI U-Nets with activity conservation;
- :mod:`DLPVCLib.correction`: IY-PVC and DL-PVC of images of any geometry;
- :mod:`DLPVCLib.logic`: the same on MRML nodes, with the per-segment before/after table;
- :mod:`DLPVCLib.cli`: the ``pvc`` command.

DL-PVC needs a trained model in the registry (:mod:`DosimetryCore.learning.models`); none ships yet.
"""
