"""Nuclear-medicine imaging: SPECT/planar projectors and collimators, OSEM, and case simulation."""
