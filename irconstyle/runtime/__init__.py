"""The machine a run uses: the device, run profiles (smoke/full), memory readings, the environment record.
May import: nothing.
"""
