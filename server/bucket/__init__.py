"""The bucket itself: URLs, the server's own read access, and bucket setup (CORS) commands."""
