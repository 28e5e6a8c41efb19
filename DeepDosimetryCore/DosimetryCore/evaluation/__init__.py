"""Evaluation: image metrics, the metric table and reports (figures, tables, Slicer scenes)."""
