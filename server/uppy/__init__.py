"""Uppy (``@uppy/aws-s3``) uploads signed by ossgate: ``POST /api/uppy/sign``."""
