"""DosimetryCore: the logic library shared by the DeepDosimetry Slicer modules.

Plain Python (no Qt, no GUI). Images are SimpleITK images in memory; numerical work is done on
numpy arrays and torch tensors. Only :mod:`DosimetryCore.io.mrml` imports ``slicer``.
"""

__version__ = "0.1.0"
