#include <openssl/evp.h>

#include "ed25519.h"

static void free_mdctxp(EVP_MD_CTX **p)
{
    EVP_MD_CTX_free(*p);
}

#define auto_mdctx __attribute__((cleanup(free_mdctxp))) EVP_MD_CTX *

/* libcrypto reports through its own error queue, not errno: a refusal of
 * the key or the data reads as EINVAL, naming the call that refused. */
EVP_PKEY *crn_ed25519_key_new(const unsigned char *seed, crn_error *err)
{
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
                                                 CRN_ED25519_KEY_SIZE);

    if (key == NULL)
        crn_error_set(err, EINVAL, "EVP_PKEY_new_raw_private_key", "ED25519");
    return key;
}

void crn_ed25519_key_free(EVP_PKEY *key)
{
    EVP_PKEY_free(key);
}

int crn_ed25519_public(EVP_PKEY *key, unsigned char *pub, crn_error *err)
{
    size_t len = CRN_ED25519_KEY_SIZE;

    if (EVP_PKEY_get_raw_public_key(key, pub, &len) != 1 || len != CRN_ED25519_KEY_SIZE)
        return crn_error_set(err, EINVAL, "EVP_PKEY_get_raw_public_key", "ED25519");
    return 0;
}

int crn_ed25519_sign(EVP_PKEY *key, const unsigned char *data, size_t len, unsigned char *sig,
                     crn_error *err)
{
    auto_mdctx ctx = EVP_MD_CTX_new();
    size_t siglen = CRN_ED25519_SIG_SIZE;

    if (ctx == NULL)
        return crn_error_set(err, ENOMEM, "EVP_MD_CTX_new", NULL);
    /* Ed25519 is "pure": no digest is named, the data goes in one call */
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1)
        return crn_error_set(err, EINVAL, "EVP_DigestSignInit", "ED25519");
    if (EVP_DigestSign(ctx, sig, &siglen, data, len) != 1 || siglen != CRN_ED25519_SIG_SIZE)
        return crn_error_set(err, EINVAL, "EVP_DigestSign", "ED25519");
    return 0;
}
