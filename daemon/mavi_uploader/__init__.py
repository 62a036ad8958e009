"""Watched-folder uploader for the Memories.ai (MAVI) v2 API."""

__version__ = "0.1.0"
