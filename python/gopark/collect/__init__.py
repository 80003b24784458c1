"""Collection from live /debug/pprof endpoints into bundles.

``collect_bundle(url, out_dir, options)`` takes a collection into a new bundle folder,
``collect_zip(url, out_zip, options)`` into a zipped one; ``open_bundle(dir_or_zip)`` reads
one back and ``zip_bundle(dir, out_zip)`` zips a folder. The manifest format is
documented in :mod:`gopark.collect.bundle`.
"""

from gopark.collect.bundle import Bundle, BundleFile, open_bundle, zip_bundle
from gopark.collect.client import ClientOptions
from gopark.collect.collector import CollectOptions, ProgressEvent, collect_bundle, collect_zip

__all__ = ["Bundle", "BundleFile", "ClientOptions", "CollectOptions", "ProgressEvent",
           "collect_bundle", "collect_zip", "open_bundle", "zip_bundle"]
