"""The paper's segmentation networks (PyTorch), built by name with :func:`create_model`."""
