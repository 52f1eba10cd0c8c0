"""IRConStyle: ConStyle (contrastive learning + style transfer) for U-Net image restoration."""
from .method.constyle import ConStyle, ConStyleOutput, Encoding, StyleEncoder
from .method.losses import LossWeights, content_loss, infonce_loss, restoration_loss, style_loss
from .nets.adapter import attach_constyle
from .nets.zoo import build_model, model_names

__version__ = "0.1.0"

from . import _moved  # noqa: E402 - old module names, for one release

_moved.install()

__all__ = [
    "ConStyle", "ConStyleOutput", "Encoding", "StyleEncoder",
    "LossWeights", "content_loss", "infonce_loss", "restoration_loss", "style_loss",
    "attach_constyle", "build_model", "model_names", "__version__",
]
