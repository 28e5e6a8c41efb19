"""DoseRateCNN: absorbed dose rate from SPECT activity and CT (Li et al., deep residual network).

This version maps dose rates with DosimetryCore's methods (voxel dose kernels with density
scaling, local deposition, Monte Carlo) on MRML nodes, with a per-segment table; the residual
CNN that corrects the kernel map is not part of it yet.
"""
