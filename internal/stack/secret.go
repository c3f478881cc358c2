package stack

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The server secret: 32 random bytes that key the hashes of shop API keys
// and the order ids derived from a shop's Idempotency-Key. It is made once,
// in the data folder (<data>/secrets/server.key, mode 0600), by the first
// process that needs it; a deployment on several hosts gives every API
// process and every `wxflow shop` command the same file
// (WXFLOW_SERVER_SECRET_FILE). Losing it invalidates every shop key.

// SecretBytes is the server secret's length.
const SecretBytes = 32

// DefaultSecretFile is where the server secret lives in a data folder.
func DefaultSecretFile(dataDir string) string {
	return filepath.Join(dataDir, "secrets", "server.key")
}

// LoadServerSecret reads the server secret from path (hex, one line) and,
// when it does not exist and create is set, makes it first. Two processes
// making it at once agree: the file appears whole or not at all (written
// aside, then linked into place), and the loser reads the winner's. A file
// that others may read is refused, as ssh refuses a private key.
func LoadServerSecret(path string, create bool) ([]byte, error) {
	secret, err := readSecret(path)
	if !errors.Is(err, fs.ErrNotExist) || !create {
		return secret, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	b := make([]byte, SecretBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".server.key-*")
	if err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(hex.EncodeToString(b) + "\n")
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("server secret: %w", err)
	}
	return readSecret(path)
}

func readSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("server secret %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: server secret %s is readable by others (mode %v): chmod 600 it", ErrInvalid, path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("server secret %s: %w", path, err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(b) < SecretBytes {
		return nil, fmt.Errorf("%w: server secret %s: want %d random bytes in hex", ErrInvalid, path, SecretBytes)
	}
	return b, nil
}

// ServerSecret loads the deployment's server secret (s.SecretFile), making
// it when it is the data folder's own and does not exist yet. A secret file
// named by WXFLOW_SERVER_SECRET_FILE is never made: on several hosts, one
// made here would differ from the others'.
func (s *Settings) ServerSecret() ([]byte, error) {
	return LoadServerSecret(s.SecretFile, s.SecretFile == DefaultSecretFile(s.DataDir))
}
