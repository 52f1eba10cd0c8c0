"""Evaluation: metrics, protocols, ECC alignment, tiled inference, restoring, latent-space measures.
May import: checkpoints, nets, method, data, runtime.
"""
