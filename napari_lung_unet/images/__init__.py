"""Chest X-ray images in memory and on disk: reading PNG/TIFF/JPEG (DICOM pixels come from
``dicom/``), the shared image errors and pixel budget, the lung label convention, mask checks,
overlays, and the synthetic phantoms used by the sample data and the tests."""
