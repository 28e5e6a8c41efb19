"""DLPVC: deep-learning partial-volume correction of 177Lu SPECT (Leube et al., J Nucl Med 2024).

This version offers the per-segment activity table of a SPECT volume; the correction methods
(DL-PVC with a 3D R2U-Net, iterative Yang PVC) are not part of it yet.
"""
