"""What a browser or an operator fetches: the upload page, health checks, the OpenAPI document."""
