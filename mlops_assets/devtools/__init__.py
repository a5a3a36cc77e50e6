"""Local servers that the tests and the benchmarks start themselves: `dagster dev`, the serving app, MLflow.

Not part of a deployment: these start a server on a free 127.0.0.1 port, wait until it answers and stop its
whole process group, so that neither a test nor a benchmark leaves a server behind.
"""
