"""napari-lung-unet: lung masks for chest X-rays, proposed by a U-Net and corrected in napari."""

__version__ = "0.1.0"
