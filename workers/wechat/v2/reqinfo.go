package v2

import (
	"bytes"
	"crypto/aes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/wxflow/wxflow/workers/wechat"
)

// reqInfoKey is the AES-256 key of req_info: the 32 ASCII characters of the
// lower-case hex MD5 of the API key (not the 16 digest bytes).
func reqInfoKey(apiKey string) []byte {
	sum := md5.Sum([]byte(apiKey))
	return []byte(hex.EncodeToString(sum[:]))
}

// EncryptReqInfo encrypts a refund notification's plaintext as WeChat does:
// AES-256-ECB with PKCS#7 padding, base64, the key being the lower-hex MD5 of
// the API key (退款结果通知's req_info).
func EncryptReqInfo(plaintext []byte, apiKey string) (string, error) {
	block, err := aes.NewCipher(reqInfoKey(apiKey))
	if err != nil {
		return "", err
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	data := append(append([]byte{}, plaintext...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	for i := 0; i < len(data); i += aes.BlockSize {
		block.Encrypt(data[i:i+aes.BlockSize], data[i:i+aes.BlockSize])
	}
	return base64.StdEncoding.EncodeToString(data), nil
}

// DecryptReqInfo reverses EncryptReqInfo; a wrong key or a forged value fails
// with [wechat.ErrDecrypt] (the padding check catches almost every wrong key,
// and the caller then parses the XML, which catches the rest).
func DecryptReqInfo(reqInfo string, apiKey string) ([]byte, error) {
	data, err := base64.StdEncoding.DecodeString(reqInfo)
	if err != nil {
		return nil, fmt.Errorf("%w: req_info is not base64: %w", wechat.ErrDecrypt, err)
	}
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: req_info length %d", wechat.ErrDecrypt, len(data))
	}
	block, err := aes.NewCipher(reqInfoKey(apiKey))
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(data))
	for i := 0; i < len(data); i += aes.BlockSize {
		block.Decrypt(out[i:i+aes.BlockSize], data[i:i+aes.BlockSize])
	}
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(out[len(out)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, fmt.Errorf("%w: bad padding", wechat.ErrDecrypt)
	}
	return out[:len(out)-pad], nil
}
