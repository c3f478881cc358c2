package wechat

import "crypto"

// Signer is what signs with the merchant's private key: v3 requests and
// v3 front-end paySign values (SHA256withRSA, PKCS#1 v1.5). It is Go's
// crypto/rsa, unless wxflow was built with the openssl tag: then the
// system's OpenSSL (libcrypto, loaded at start), 2.6 times faster at
// RSA-2048 signatures on the machine of docs/PERFORMANCE.md, with the very
// same signatures (PKCS#1 v1.5 is deterministic). A Merchant not made by
// LoadMerchant, or whose PrivateKey was changed since, signs with Go's.
func (m *Merchant) Signer() crypto.Signer {
	if m.signer != nil && m.signerKey == m.PrivateKey {
		return m.signer
	}
	return m.PrivateKey
}

// SignerBackend names the signer this build uses: "go" or "openssl".
func SignerBackend() string { return signerBackend }
