# cython: language_level=3
"""Ed25519 (RFC 8032) with the libcrypto the daemon already maps: a signing
key made from a 32-byte seed, its raw public key and the 64-byte signature
of some bytes.  The node key's files and the records' format are
attestation/keys.py's; this module only makes the libcrypto calls
(docs/memory.md says why it is not `cryptography`)."""
from crio_native._native.includes.error cimport crn_error, crn_error_clear, raise_native
from crio_native._native.includes cimport ed25519 as c

KEY_SIZE = c.CRN_ED25519_KEY_SIZE
SIGNATURE_SIZE = c.CRN_ED25519_SIG_SIZE


cdef class SigningKey:
    """The key of `seed`, held by libcrypto until this object goes."""

    cdef c.EVP_PKEY *_key

    def __cinit__(self, bytes seed):
        if len(seed) != c.CRN_ED25519_KEY_SIZE:
            raise ValueError(f"seed: want {c.CRN_ED25519_KEY_SIZE} bytes, got {len(seed)}")
        cdef crn_error err
        cdef const unsigned char *p_seed = seed
        crn_error_clear(&err)
        self._key = c.crn_ed25519_key_new(p_seed, &err)
        if self._key == NULL:
            raise_native(&err)

    def __dealloc__(self):
        if self._key != NULL:
            c.crn_ed25519_key_free(self._key)

    def public_key(self):
        """The raw 32-byte public key."""
        cdef crn_error err
        cdef unsigned char pub[c.CRN_ED25519_KEY_SIZE]
        crn_error_clear(&err)
        if c.crn_ed25519_public(self._key, pub, &err) < 0:
            raise_native(&err)
        return pub[:c.CRN_ED25519_KEY_SIZE]

    def sign(self, bytes data):
        """The 64-byte signature of `data`."""
        cdef crn_error err
        cdef unsigned char sig[c.CRN_ED25519_SIG_SIZE]
        cdef const unsigned char *p_data = data
        cdef size_t n = len(data)
        cdef int rc
        crn_error_clear(&err)
        with nogil:
            rc = c.crn_ed25519_sign(self._key, p_data, n, sig, &err)
        if rc < 0:
            raise_native(&err)
        return sig[:c.CRN_ED25519_SIG_SIZE]

    def __repr__(self):
        return "<ed25519.SigningKey>"
