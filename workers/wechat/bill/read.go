package bill

import (
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxBytes bounds a bill wxflow reads, compressed or not (256 MiB): a day
// of a very large merchant fits, a stream that never ends does not.
const MaxBytes = 256 << 20

// ErrTooLarge: a bill (or its compressed stream) is larger than [MaxBytes].
var ErrTooLarge = errors.New("bill: larger than the limit")

// ReadAll reads r up to limit bytes; more is [ErrTooLarge].
func ReadAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, limit)
	}
	return b, nil
}

// IsGzip reports whether data starts with gzip's magic bytes (1f 8b).
func IsGzip(data []byte) bool { return len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b }

// Gunzip decompresses a gzip stream of at most limit bytes once decompressed.
func Gunzip(data []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("bill: gzip: %w", err)
	}
	defer zr.Close()
	out, err := ReadAll(zr, limit)
	if err != nil {
		return nil, fmt.Errorf("bill: gzip: %w", err)
	}
	return out, nil
}

// SHA1 is the lower-case hex SHA-1 of data: v3's hash_value of a bill, over
// its decompressed bytes exactly as received (BOM and CRLF included).
func SHA1(data []byte) string {
	sum := sha1.Sum(data)
	return hex.EncodeToString(sum[:])
}

// SameHash compares a SHA-1 with WeChat's hash_value, case-insensitively.
func SameHash(a, b string) bool { return a != "" && strings.EqualFold(a, b) }
