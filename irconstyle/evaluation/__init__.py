"""Evaluation: metrics, scoring protocols, ECC alignment, tiled inference, restoring and scoring images, latent-space measures.
May import: checkpoints, nets, method, data, runtime.
"""
