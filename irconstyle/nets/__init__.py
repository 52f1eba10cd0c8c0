"""Networks: the U-Net with ConStyle's injection, backbones, adapter, padding, zoo, model table.
May import: method, runtime.
"""
