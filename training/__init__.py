"""Training, fine-tuning and evaluation for napari-lung-unet."""
