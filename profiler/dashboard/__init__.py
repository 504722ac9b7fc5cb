"""The MFU dashboard: a TensorBoard plugin (plugin.py) and the page it serves (static/)."""
