"""The network and everything around one call to it: the U-Net, its model card, saving and
loading weights, the model registry (versions, current, bundled default), the compute device,
pre-processing, post-processing, and the :class:`~napari_lung_unet.nn.predict.Predictor`."""
