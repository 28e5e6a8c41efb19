"""DLPVC: deep-learning partial-volume correction of 177Lu SPECT (Leube et al., J Nucl Med 2024).

This version holds the per-segment activity table of a SPECT volume and the classical reference,
iterative Yang PVC (:mod:`DLPVCLib.iterative_yang`, equal to PETPVC's ``--pvc IY``), and the
DL-PVC networks (:mod:`DLPVCLib.networks`: 3D R2U-Net and MONAI U-Nets with activity
conservation). No trained DL-PVC model ships yet, so no correction is offered to users.
"""
