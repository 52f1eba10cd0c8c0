"""The machine a run uses: the device, run profiles (smoke/full), memory readings, the environment.
May import: nothing.
"""
