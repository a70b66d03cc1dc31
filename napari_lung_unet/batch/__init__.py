"""``lung-unet predict`` at archive scale: the pipeline (plan, resume, record), the per-image
steps, the local worker pool, the Dask cluster runner, results.csv and DICOMweb studies."""
