"""Radiation physics data: nuclide emissions (ICRP 107) and tissue (HU -> density, attenuation, materials)."""
