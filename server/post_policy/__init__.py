"""PostObject form uploads the server pins exactly: V4 policy signing and ``/api/post-policy``."""
