"""Foundations every other package uses: image geometry, metadata keys, units and constants,
validation, progress, compute device, resources and caches. Nothing here imports torch at load
time, so a Slicer panel may import it."""
