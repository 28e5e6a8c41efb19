"""PlanarTo3D: 3D 177Lu activity from anterior/posterior planar scintigraphy (Lopez-Montes et al.).

This version imports the planar anterior/posterior pair; the patient-specific reconstruction
networks are not part of it yet.
"""
