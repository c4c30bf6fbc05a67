"""What was uploaded: upload records, reconcile, ``/api/uploads`` and ``ossgate uploads``."""
