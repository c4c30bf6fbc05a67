"""OSS upload callbacks: the parameters handed to browsers, signature verification against the
pinned public key, and ``/oss/callback``."""
