"""crio-native: a Kubernetes CRI runtime with a compiled Linux-native core."""

__version__ = "0.1.0"
