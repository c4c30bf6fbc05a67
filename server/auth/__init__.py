"""Who the caller is: bearer JWTs, canonical user keys, the demo login and per-user rate limits."""
