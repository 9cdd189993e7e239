"""The ``kassa`` command line: the only place that reads the environment and sets up logging."""
