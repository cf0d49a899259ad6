"""Content-addressed message files (see files.py)."""

from .files import BlobStore, content_id, fsync_dir, is_content_id

__all__ = ["BlobStore", "content_id", "fsync_dir", "is_content_id"]
