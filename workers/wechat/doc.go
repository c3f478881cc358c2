// Package wechat holds what every WeChat protocol package shares: the
// [Merchant] and its secrets, and the [Error] type that lets a worker tell a
// retryable failure from a final one.
//
// The protocols themselves live in subpackages, one per family:
//
//   - mp: Official Account and mini-program APIs (tokens, OAuth, jscode2session, JS-SDK signature)
//   - v2: WeChat Pay API v2 (XML, MD5 / HMAC-SHA256 signatures, mutual TLS refunds)
//   - v3: WeChat Pay API v3 (JSON, RSA signatures, AES-256-GCM notifications)
//   - pay: one version-agnostic facade over v2 and v3 for the workers
//   - sim: a local simulator of WeChat that signs, verifies, encrypts and retries as WeChat does
//
// Nothing in this tree knows about wxflow's orders: it speaks WeChat only.
package wechat
