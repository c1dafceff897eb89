"""ViTDeblur: image deblurring with a ViT encoder and a CNN decoder."""

from vitdeblur.hub import CheckpointError, load_model, save_checkpoint
from vitdeblur.images import ImageError, load_image
from vitdeblur.inference import deblur_array, deblur_image
from vitdeblur.model import ViTDeblur, ViTDeblurConfig

__all__ = ["ViTDeblur", "ViTDeblurConfig", "load_model", "save_checkpoint", "deblur_image", "deblur_array",
           "load_image", "ImageError", "CheckpointError"]
