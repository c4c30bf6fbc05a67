"""Where uploads go: the Destination value (prefix, limits, callback) and who may use which."""
