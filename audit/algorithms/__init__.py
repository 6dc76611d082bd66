"""Algorithm versions: the shipped modules and the registry that stores and runs source text.

An algorithm is a self-contained Python module (see README, "Algorithm contract"). What runs
is always the source text stored in the store, never the installed file: the installed
modules are only registered from, on first use.
"""
