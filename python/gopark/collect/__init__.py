"""Collection from live /debug/pprof endpoints into bundles."""
