r"""Cut training images into overlapping 512x512 sub-images (stride 384) to keep a GPU fed.

    python -m data_scripts.make_subimages --input data/denoise/train/DFWB \
        --output data/denoise/train/DFWB_sub
    python -m data_scripts.make_subimages --input data/deblur/train/GoPro/input \
        --target data/deblur/train/GoPro/target \
        --output data/deblur/train/GoPro_sub/input \
        --output-target data/deblur/train/GoPro_sub/target

The logic is irconstyle.data.subimages.
"""
from irconstyle.data.subimages import main

if __name__ == "__main__":
    raise SystemExit(main())
