/* Ed25519 signatures through the process's own libcrypto (OpenSSL 3).
 *
 * The daemon already maps libcrypto (Python's _hashlib and _ssl link it), so
 * signing the attestation records here costs a few pages instead of the
 * `cryptography` package's extension (docs/memory.md).  Keys come from the
 * raw 32-byte seeds of RFC 8032; signatures are its 64-byte deterministic
 * ones.  A key may sign from several threads at once (each call has its own
 * EVP_MD_CTX; OpenSSL 3 keys are safe to share for signing). */
#ifndef CRN_ED25519_H
#define CRN_ED25519_H

#include <stddef.h>

#include <openssl/types.h>

#include "error.h"

#define CRN_ED25519_KEY_SIZE 32
#define CRN_ED25519_SIG_SIZE 64

/* The key of `seed` (32 bytes); NULL on failure.  Free with crn_ed25519_key_free. */
EVP_PKEY *crn_ed25519_key_new(const unsigned char *seed, crn_error *err);

void crn_ed25519_key_free(EVP_PKEY *key);

/* The raw public key of `key` into `pub` (32 bytes). */
int crn_ed25519_public(EVP_PKEY *key, unsigned char *pub, crn_error *err);

/* The signature of `data` by `key` into `sig` (64 bytes). */
int crn_ed25519_sign(EVP_PKEY *key, const unsigned char *data, size_t len, unsigned char *sig,
                     crn_error *err);

#endif
