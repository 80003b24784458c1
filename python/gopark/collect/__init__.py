"""Collection from live /debug/pprof endpoints into bundles.

``collect_bundle(url, out_dir, options)`` takes a collection into a new bundle folder;
``open_bundle(dir)`` reads one back. The manifest format is documented in
:mod:`gopark.collect.bundle`.
"""

from gopark.collect.bundle import Bundle, BundleFile, open_bundle
from gopark.collect.client import ClientOptions
from gopark.collect.collector import CollectOptions, ProgressEvent, collect_bundle

__all__ = ["Bundle", "BundleFile", "ClientOptions", "CollectOptions", "ProgressEvent",
           "collect_bundle", "open_bundle"]
