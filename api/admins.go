package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// MinAdminTokenBytes is the shortest admin token accepted: a token is the key
// to every order's money, and a short one (the old "local-admin-token") can
// be guessed. `openssl rand -hex 32` writes a good one.
const MinAdminTokenBytes = 32

// DefaultAdminName is the identity of a deployment's single admin token:
// every action it takes is written to the history as "admin:admin".
const DefaultAdminName = "admin"

// adminNameRE is what a named admin may be called: it becomes part of the
// actor ("admin:<name>") of every command the admin sends.
var adminNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// admin is one person (or team) allowed into /admin/: a name for the history
// and the digest of their token (the token itself is not kept).
type admin struct {
	name   string
	digest [sha256.Size]byte
}

// admins is the deployment's list of admins, from WXFLOW_ADMIN_TOKEN.
type admins []admin

// CheckAdminTokens says what is wrong with a WXFLOW_ADMIN_TOKEN value, so
// the command line can refuse it before connecting to anything; [New]
// refuses the same values.
func CheckAdminTokens(value string) error {
	_, err := parseAdmins(value)
	return err
}

// parseAdmins reads WXFLOW_ADMIN_TOKEN: either one token (whose admin is
// called DefaultAdminName) or comma-separated NAME=TOKEN pairs, so each
// person signs in with their own token and the history says who acted
// (looksNamed tells which). Every token must be at least MinAdminTokenBytes long and every name unique;
// errors never quote a token. An empty value is no admin at all.
func parseAdmins(value string) (admins, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, nil
	}
	if !looksNamed(value) {
		if len(value) < MinAdminTokenBytes {
			return nil, fmt.Errorf("admin token: %d bytes, at least %d are required (e.g. `openssl rand -hex 32`)", len(value), MinAdminTokenBytes)
		}
		return admins{{name: DefaultAdminName, digest: sha256.Sum256([]byte(value))}}, nil
	}
	var out admins
	seen := map[string]bool{}
	for i, part := range strings.Split(value, ",") {
		name, token, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok || !adminNameRE.MatchString(name):
			return nil, fmt.Errorf("admin tokens: pair %d: want NAME=TOKEN, NAME of up to 32 a-z, 0-9, _ and -", i+1)
		case seen[name]:
			return nil, fmt.Errorf("admin tokens: %q is named twice", name)
		case len(token) < MinAdminTokenBytes:
			return nil, fmt.Errorf("admin token of %q: %d bytes, at least %d are required (e.g. `openssl rand -hex 32`)", name, len(token), MinAdminTokenBytes)
		}
		seen[name] = true
		out = append(out, admin{name: name, digest: sha256.Sum256([]byte(token))})
	}
	return out, nil
}

// looksNamed says whether value is NAME=TOKEN pairs rather than one token:
// it has a comma, or its part before the first '=' could be a name (up to 32
// letters, digits, '_' and '-', any case, so "Alice=…" is refused for its
// name rather than taken for a token). A padded base64 token of 32 bytes has
// 42 characters or more before its '=' and stays one token.
func looksNamed(value string) bool {
	if strings.Contains(value, ",") {
		return true
	}
	name, token, ok := strings.Cut(value, "=")
	return ok && token != "" && nameish.MatchString(name)
}

// nameish is what might have been meant as an admin's name.
var nameish = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// match returns the name of the admin whose token got is. Every admin is
// compared, in constant time over digests, so neither the length of a token
// nor which admin it came close to leaks through timing.
func (as admins) match(got string) (string, bool) {
	if got == "" {
		return "", false
	}
	d := sha256.Sum256([]byte(got))
	found := ""
	for _, a := range as {
		if subtle.ConstantTimeCompare(d[:], a.digest[:]) == 1 {
			found = a.name
		}
	}
	return found, found != ""
}

// tokenTag names the token an admin signed in with, for the session it
// makes: 8 bytes of a hash of the token's digest, which tell tokens apart
// and give nothing to guess the token from.
func (a admin) tokenTag() string {
	d := sha256.Sum256(append([]byte("wxflow admin session\x00"), a.digest[:]...))
	return hex.EncodeToString(d[:8])
}

// tag is the token tag of the admin called name; "" when there is none.
func (as admins) tag(name string) string {
	for _, a := range as {
		if a.name == name {
			return a.tokenTag()
		}
	}
	return ""
}

// holds says whether a session is still backed by its admin's token: the
// admin is still named and their token is the one they signed in with.
// Rotating an admin's token, or removing the admin, ends their sessions on
// every api process given the new WXFLOW_ADMIN_TOKEN.
func (as admins) holds(sess session) bool {
	tag := as.tag(sess.Admin)
	return tag != "" && subtle.ConstantTimeCompare([]byte(tag), []byte(sess.Token)) == 1
}
