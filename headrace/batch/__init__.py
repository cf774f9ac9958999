"""Batch jobs: the `/v1/batches` file formats and the worker that runs batch lines.

Lines run through the gateway's own pipeline by a callable the api layer hands the worker
(`api/batch_calls.py`); this package never imports the api.
"""
