"""Compiled core of crio-native: thin Cython wrappers over src/_native.

Each submodule maps one kernel concern; failures raise
crio_native.errors.NativeError (an OSError)."""
