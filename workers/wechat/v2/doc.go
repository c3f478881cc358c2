// Package v2 speaks WeChat Pay API v2 (XML over HTTPS, MD5 / HMAC-SHA256
// signatures, mutual TLS for refunds): the merchant's client, and the
// server-side primitives (signing responses, encrypting req_info) that the
// simulator uses to answer exactly as WeChat does.
//
// Signatures are computed over every field received, not over a struct, so
// fields WeChat adds later never break verification.
package v2
