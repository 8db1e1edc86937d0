"""The daemon: a supervisor loop owning a pool of forked workers."""
