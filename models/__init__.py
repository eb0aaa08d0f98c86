"""The paper's segmentation networks (PyTorch), built by name with :func:`create_model`.

One module per architecture (``unet``, ``deeplab``, ``risnet``), shared blocks in ``blocks``, the
registry in ``registry``. ``weights/`` holds the shipped default ONNX model. Importing ``models`` does
not import torch.
"""

from models.registry import ARCHITECTURES, UnknownArchitectureError, create_model

__all__ = ["ARCHITECTURES", "UnknownArchitectureError", "create_model"]
