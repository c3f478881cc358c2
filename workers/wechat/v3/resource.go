package v3

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"fmt"

	"github.com/wxflow/wxflow/workers/wechat"
)

// AlgorithmAEADAES256GCM is the only resource algorithm WeChat uses.
const AlgorithmAEADAES256GCM = "AEAD_AES_256_GCM"

// Resource is the encrypted part of a WeChat Pay v3 notification (支付通知,
// 退款结果通知).
type Resource struct {
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
	OriginalType   string `json:"original_type"`
}

func gcm(key string) (cipher.AEAD, error) {
	block, err := aes.NewCipher([]byte(key))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", wechat.ErrDecrypt, err)
	}
	return cipher.NewGCM(block)
}

// EncryptResource encrypts plaintext as WeChat does for notifications: AES-GCM
// with the APIv3 key, the 12-character nonce and the associated data.
func EncryptResource(apiV3Key, nonce, associatedData, originalType string, plaintext []byte) (Resource, error) {
	aead, err := gcm(apiV3Key)
	if err != nil {
		return Resource{}, err
	}
	if len(nonce) != aead.NonceSize() {
		return Resource{}, fmt.Errorf("v3: nonce must be %d bytes", aead.NonceSize())
	}
	ct := aead.Seal(nil, []byte(nonce), plaintext, []byte(associatedData))
	return Resource{Algorithm: AlgorithmAEADAES256GCM, Ciphertext: base64.StdEncoding.EncodeToString(ct),
		AssociatedData: associatedData, Nonce: nonce, OriginalType: originalType}, nil
}

// DecryptResource opens a notification resource; failures wrap wechat.ErrDecrypt.
func DecryptResource(apiV3Key string, r Resource) ([]byte, error) {
	if r.Algorithm != "" && r.Algorithm != AlgorithmAEADAES256GCM {
		return nil, fmt.Errorf("%w: algorithm %q", wechat.ErrDecrypt, r.Algorithm)
	}
	aead, err := gcm(apiV3Key)
	if err != nil {
		return nil, err
	}
	if len(r.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("%w: nonce of %d bytes", wechat.ErrDecrypt, len(r.Nonce))
	}
	ct, err := base64.StdEncoding.DecodeString(r.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext is not base64", wechat.ErrDecrypt)
	}
	plain, err := aead.Open(nil, []byte(r.Nonce), ct, []byte(r.AssociatedData))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", wechat.ErrDecrypt, err)
	}
	return plain, nil
}
