"""Errors raised by the task data loaders."""

from __future__ import annotations


class DataError(ValueError):
    """A data file is missing, empty, corrupted or fails its checksum.

    The message names the offending path and how to fix it.
    """
