from crio_native._native.includes.error cimport crn_error

cdef extern from "ed25519.h" nogil:
    ctypedef struct EVP_PKEY:
        pass
    enum:
        CRN_ED25519_KEY_SIZE
        CRN_ED25519_SIG_SIZE
    EVP_PKEY *crn_ed25519_key_new(const unsigned char *seed, crn_error *err)
    void crn_ed25519_key_free(EVP_PKEY *key)
    int crn_ed25519_public(EVP_PKEY *key, unsigned char *pub, crn_error *err)
    int crn_ed25519_sign(EVP_PKEY *key, const unsigned char *data, size_t len,
                         unsigned char *sig, crn_error *err)
