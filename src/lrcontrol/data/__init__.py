"""Data-set loaders: installed packages first, then the cache directory, then the real download.

See `lrcontrol.data.cache` for the cache directory (`$LRCONTROL_DATA`) and `LRCONTROL_OFFLINE`.
"""

from lrcontrol.data.cache import DataUnavailable, cache_dir

__all__ = ["DataUnavailable", "cache_dir"]
