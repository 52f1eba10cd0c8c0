"""Networks: the general restoration U-Net template, its blocks, and the original backbones."""
