"""Checkpoints: reading and writing weights, ours (checkpoint, safetensors, state dict) and the authors' release.
May import: method, runtime.
"""
