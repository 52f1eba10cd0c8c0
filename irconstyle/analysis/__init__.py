"""Analyses of ConStyle's latent space."""
