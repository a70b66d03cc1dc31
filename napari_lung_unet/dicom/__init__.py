"""DICOM in and out: decoding radiographs (every transfer syntax CR/DX archives use), writing and
reading DICOM Segmentations, DICOMweb (QIDO-RS, WADO-RS, STOW-RS) and PACS worklists."""
