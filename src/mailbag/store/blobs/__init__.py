"""Content-addressed message bytes: files (files.py), small ones in the database (indb.py)."""

from .files import BlobStore, content_id, fsync_dir, is_content_id

__all__ = ["BlobStore", "content_id", "fsync_dir", "is_content_id"]
