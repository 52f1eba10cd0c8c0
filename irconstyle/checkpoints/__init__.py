"""Checkpoints: reading and writing weights, ours (checkpoint, safetensors) and the authors'.
May import: method, runtime.
"""
