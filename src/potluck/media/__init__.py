"""Recipe images: upload, processing into WebP variants, storage (local disk or S3) and their public URLs."""
