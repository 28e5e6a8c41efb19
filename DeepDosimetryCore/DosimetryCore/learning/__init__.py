"""Deep learning: network blocks, losses, the training loop and the model registry (weights + cards).

Physics and imaging never import this package.
"""
