"""Pod networking through CNI."""
