"""Image references, registry configuration, the distribution client and pulls."""
