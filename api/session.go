package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
)

// adminCookie carries the admin page's session id: a random value that is
// worth nothing once the session ends, never the admin token itself.
const adminCookie = "wxflow_admin"

// sessionIDBytes is how much randomness a session id has.
const sessionIDBytes = 32

// errNoSession is a session id that names no live session: unknown, ended
// by a sign-out, or expired.
var errNoSession = errors.New("no such admin session")

// session is what the store keeps of one sign-in: who signed in, with which
// token (its tag, admins.holds), and until when the sign-in holds
// (absolute: using the page does not extend it).
type session struct {
	Admin   string    `json:"admin"`
	Token   string    `json:"token"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// sessions keeps sign-ins in the NATS bucket engine.AdminSessionBucket, so
// that any api process of the deployment knows a session another one made
// and a sign-out on one ends it on all. The bucket's TTL drops sessions NATS
// no longer needs; the stored Expires is what decides. Keys are a hash of the
// session id: reading the bucket gives no one a cookie that works.
type sessions struct {
	js jetstream.JetStream

	mu sync.Mutex
	kv jetstream.KeyValue // found on first use: the api may start before the bucket is declared
}

func (ss *sessions) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.kv != nil {
		return ss.kv, nil
	}
	kv, err := ss.js.KeyValue(ctx, engine.AdminSessionBucket)
	if err != nil {
		return nil, fmt.Errorf("admin sessions: bucket %s: %w", engine.AdminSessionBucket, err)
	}
	ss.kv = kv
	return kv, nil
}

// sessionKey is the bucket key of a session id: its SHA-256, in hex.
func sessionKey(id string) string {
	d := sha256.Sum256([]byte(id))
	return hex.EncodeToString(d[:])
}

// create starts a session for the admin called name, signed in with the
// token tagged tag, lasting ttl from now, and returns its new random id.
func (ss *sessions) create(ctx context.Context, name, tag string, now time.Time, ttl time.Duration) (string, session, error) {
	raw := make([]byte, sessionIDBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", session{}, fmt.Errorf("admin sessions: random id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(raw)
	sess := session{Admin: name, Token: tag, Created: now.UTC(), Expires: now.Add(ttl).UTC()}
	kv, err := ss.bucket(ctx)
	if err != nil {
		return "", session{}, err
	}
	b, err := json.Marshal(sess)
	if err != nil {
		return "", session{}, fmt.Errorf("admin sessions: %w", err)
	}
	if _, err := kv.Put(ctx, sessionKey(id), b); err != nil {
		return "", session{}, fmt.Errorf("admin sessions: store: %w", err)
	}
	return id, sess, nil
}

// get returns the live session id names at now; errNoSession when there is
// none (an expired one is ended on the way).
func (ss *sessions) get(ctx context.Context, id string, now time.Time) (session, error) {
	if len(id) != base64.RawURLEncoding.EncodedLen(sessionIDBytes) {
		return session{}, errNoSession // not one of ours (the token itself, say): no need to ask NATS
	}
	kv, err := ss.bucket(ctx)
	if err != nil {
		return session{}, err
	}
	e, err := kv.Get(ctx, sessionKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return session{}, errNoSession
	}
	if err != nil {
		return session{}, fmt.Errorf("admin sessions: read: %w", err)
	}
	var sess session
	if err := json.Unmarshal(e.Value(), &sess); err != nil || sess.Admin == "" {
		return session{}, errNoSession
	}
	if !now.Before(sess.Expires) {
		_ = ss.end(ctx, id)
		return session{}, errNoSession
	}
	return sess, nil
}

// end deletes a session: its cookie no longer works on any api process.
func (ss *sessions) end(ctx context.Context, id string) error {
	kv, err := ss.bucket(ctx)
	if err != nil {
		return err
	}
	if err := kv.Purge(ctx, sessionKey(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("admin sessions: delete: %w", err)
	}
	return nil
}
