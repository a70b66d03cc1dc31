"""The Lung U-Net napari dock widget (manifest command ``napari-lung-unet.make_widget``)."""

from .dock import LungUNetWidget

__all__ = ["LungUNetWidget"]
