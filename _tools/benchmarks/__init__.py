"""The benchmarks behind `_tools/benchmark.py`, one module per subcommand; measure.py is what they share."""
