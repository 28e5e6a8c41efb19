"""DoseRateCNN: absorbed dose rate from SPECT activity and CT (Li et al., deep residual network).

This version computes the CT-derived mass density map used for density scaling of dose rates;
the voxel-dose-kernel map and the residual CNN are not part of it yet.
"""
