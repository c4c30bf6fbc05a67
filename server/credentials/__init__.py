"""What the browser may do: STS AssumeRole, session policies, the credential cache, grants and
``/api/sts-token``."""
