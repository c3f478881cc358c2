// Package v3 speaks WeChat Pay API v3 (JSON over HTTPS, SHA256withRSA
// signatures, AEAD_AES_256_GCM notifications): the merchant's client, and the
// server-side primitives (verifying requests, signing responses, encrypting
// resources) the simulator uses to answer exactly as WeChat does.
//
// Why not the official SDK's client: github.com/wechatpay-apiv3/wechatpay-go
// signs and verifies correctly, and our tests cross-check every signature we
// make with its verifier and every notification we encrypt with its
// decrypter. But its services take the API host from a constant, its models
// are generated pointer-heavy structs, and it has no server side, which the
// simulator needs. The primitives here are a few lines of crypto/rsa and
// crypto/cipher each, with value types and a configurable base URL.
package v3
