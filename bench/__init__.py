"""The benchmark harness (`make bench`, `make soak`); run its scripts as `python -m bench.<name>`."""
