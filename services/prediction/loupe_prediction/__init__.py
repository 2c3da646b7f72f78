"""Loupe prediction service: classifies images with published iterations via TorchServe."""
