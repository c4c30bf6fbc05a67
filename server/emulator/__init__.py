"""A local stand-in for one Alibaba Cloud account's STS and OSS.

It speaks the real wire protocols and verifies what the real services verify (signatures,
security tokens, RAM policies, CORS) so the demo and the tests exercise real clients. It is a
separate program from the server: nothing here imports the server's signing or policy code,
so a bug shared by both sides cannot make the tests pass.
"""
