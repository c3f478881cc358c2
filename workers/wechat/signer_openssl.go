//go:build openssl

package wechat

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/golang-fips/openssl/v2"
	"github.com/golang-fips/openssl/v2/bbig"
)

const signerBackend = "openssl"

// libcryptoNames are the shared libraries tried, newest first.
var libcryptoNames = [...]string{"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"}

// newSigner loads the system's OpenSSL (once per process: the binding
// keeps it) and hands it the key.
func newSigner(k *rsa.PrivateKey) (crypto.Signer, error) {
	name := ""
	for _, n := range libcryptoNames {
		if ok, _ := openssl.CheckVersion(n); ok {
			name = n
			break
		}
	}
	if name == "" {
		return nil, fmt.Errorf("%w: built with the openssl tag, but no libcrypto (%v) can be loaded", ErrMerchantConfig, libcryptoNames)
	}
	if err := openssl.Init(name); err != nil {
		return nil, fmt.Errorf("%w: OpenSSL %s: %w", ErrMerchantConfig, name, err)
	}
	if len(k.Primes) != 2 {
		return nil, fmt.Errorf("%w: an RSA key of %d primes", ErrMerchantConfig, len(k.Primes))
	}
	k.Precompute()
	priv, err := openssl.NewPrivateKeyRSA(bbig.Enc(k.N), bbig.Enc(big.NewInt(int64(k.E))), bbig.Enc(k.D),
		bbig.Enc(k.Primes[0]), bbig.Enc(k.Primes[1]), bbig.Enc(k.Precomputed.Dp), bbig.Enc(k.Precomputed.Dq), bbig.Enc(k.Precomputed.Qinv))
	if err != nil {
		return nil, fmt.Errorf("%w: OpenSSL key: %w", ErrMerchantConfig, err)
	}
	return &opensslSigner{pub: &k.PublicKey, priv: priv}, nil
}

// opensslSigner signs PKCS#1 v1.5 with OpenSSL; safe for concurrent use
// (each signature has its own context).
type opensslSigner struct {
	pub  *rsa.PublicKey
	priv *openssl.PrivateKeyRSA
}

func (s *opensslSigner) Public() crypto.PublicKey { return s.pub }

// Sign signs digest, a hash of opts.HashFunc(), PKCS#1 v1.5 (the only
// padding WeChat Pay uses); the reader is not used.
func (s *opensslSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, pss := opts.(*rsa.PSSOptions); pss {
		return nil, errors.New("wechat: the OpenSSL signer signs PKCS#1 v1.5 only")
	}
	return openssl.SignRSAPKCS1v15(s.priv, opts.HashFunc(), digest)
}
