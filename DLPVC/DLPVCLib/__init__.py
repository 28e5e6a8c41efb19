"""DLPVC: deep-learning partial-volume correction of 177Lu SPECT (Leube et al., J Nucl Med 2024).

This version holds the per-segment activity table of a SPECT volume and the classical reference,
iterative Yang PVC (:mod:`DLPVCLib.iterative_yang`, equal to PETPVC's ``--pvc IY``); the DL-PVC
network is not part of it yet.
"""
