package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream and bucket names. wxflow needs NATS server 2.9.0 or later: it uses
// streams with work-queue and limits retention, pull consumers, Nats-Msg-Id
// de-duplication, NakWithDelay and key-value buckets with a bucket-wide TTL,
// and nothing newer (no multi-filter consumers, per-message TTL or batches).
const (
	CommandStream = "WXFLOW_CMD"
	EventStream   = "WXFLOW_EVT"
	DeadStream    = "WXFLOW_DLQ"
	// CallStream keeps the workers' call records (wxflow.calls.<order_id>) for a week.
	CallStream        = "WXFLOW_CALLS"
	CallSubjectPrefix = "wxflow.calls."
	TokenBucket       = "wxflow_tokens"
	LeaseBucket       = "wxflow_leases"
	// CodeBucket remembers the openid each single-use OAuth / login code
	// gave, so a replayed authorize step does not spend the code twice.
	CodeBucket = "wxflow_codes"
	// AdminSessionBucket holds the admin page's sign-ins, keyed by a hash of
	// the session id, so every api process knows them; its TTL is the
	// longest a session may live (AdminSessionMaxAge).
	AdminSessionBucket = "wxflow_admin_sessions"
	// AdminSessionMaxAge is how long NATS keeps a session: an absolute limit
	// however long the api is configured to let one last.
	AdminSessionMaxAge = 8 * time.Hour
	// DeadLetterPrefix prefixes wxflow.dlq.<worker>.<order_id>.
	DeadLetterPrefix = "wxflow.dlq."
	// ReplyHeader names the core-NATS subject where the engine sends the
	// Result of a command, for the API to answer the shop at once.
	ReplyHeader = "Wxflow-Reply"
)

// StreamsConfig sizes what Provision declares.
type StreamsConfig struct {
	// Replicas is 1 on one server, 3 in a cluster.
	Replicas int
	// DuplicateWindow is how long a Nats-Msg-Id is remembered (10 min).
	DuplicateWindow time.Duration
	// EventMaxAge is how long events are kept for history and replay (30 days).
	EventMaxAge time.Duration
	// LeaseTTL is the token refresher's lease (30 s).
	LeaseTTL time.Duration
	// MaxBytes caps each stream's size (1 GiB) and MaxMsgs its messages
	// (1,000,000), so that a stream cannot fill the NATS server's disk. The
	// command stream then refuses a new command (its publisher retries: a
	// command is never dropped); the others drop their oldest messages (the
	// database keeps the history, and a dead-lettered order is flagged
	// there). The engine warns when a stream passes 80 % (streamfill.go).
	MaxBytes int64
	MaxMsgs  int64
}

func (c StreamsConfig) withDefaults() StreamsConfig {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
	if c.EventMaxAge == 0 {
		c.EventMaxAge = 30 * 24 * time.Hour
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 30
	}
	if c.MaxMsgs == 0 {
		c.MaxMsgs = 1_000_000
	}
	return c
}

// Provision declares wxflow's streams and buckets, creating or updating them:
// every process may call it at start, in any order.
func Provision(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) error {
	cfg = cfg.withDefaults()
	// Size limits and discard policies exist in NATS 2.9: MaxBytes, MaxMsgs,
	// DiscardOld and DiscardNew. A full work queue must refuse, not drop.
	streams := []jetstream.StreamConfig{
		{Name: CommandStream, Subjects: []string{CommandSubjectPrefix + ">"}, Retention: jetstream.WorkQueuePolicy,
			Storage: jetstream.FileStorage, Replicas: cfg.Replicas, Duplicates: cfg.DuplicateWindow, Discard: jetstream.DiscardNew},
		{Name: EventStream, Subjects: []string{EventSubjectPrefix + ">"}, Retention: jetstream.LimitsPolicy,
			// NATS refuses a duplicate window longer than the stream keeps messages.
			Storage: jetstream.FileStorage, Replicas: cfg.Replicas, Duplicates: min(cfg.DuplicateWindow, cfg.EventMaxAge), MaxAge: cfg.EventMaxAge},
		{Name: DeadStream, Subjects: []string{DeadLetterPrefix + ">"}, Retention: jetstream.LimitsPolicy,
			Storage: jetstream.FileStorage, Replicas: cfg.Replicas, Duplicates: cfg.DuplicateWindow},
		{Name: CallStream, Subjects: []string{CallSubjectPrefix + ">"}, Retention: jetstream.LimitsPolicy,
			Storage: jetstream.FileStorage, Replicas: cfg.Replicas, MaxAge: 7 * 24 * time.Hour},
	}
	for _, sc := range streams {
		sc.MaxBytes, sc.MaxMsgs = cfg.MaxBytes, cfg.MaxMsgs
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("engine: stream %s: %w", sc.Name, err)
		}
	}
	buckets := []jetstream.KeyValueConfig{
		{Bucket: TokenBucket, History: 1, Replicas: cfg.Replicas, Storage: jetstream.FileStorage},
		{Bucket: LeaseBucket, History: 1, Replicas: cfg.Replicas, Storage: jetstream.FileStorage, TTL: cfg.LeaseTTL},
		{Bucket: CodeBucket, History: 1, Replicas: cfg.Replicas, Storage: jetstream.FileStorage, TTL: 24 * time.Hour},
		{Bucket: AdminSessionBucket, History: 1, Replicas: cfg.Replicas, Storage: jetstream.FileStorage, TTL: AdminSessionMaxAge},
	}
	for _, kc := range buckets {
		if _, err := js.CreateKeyValue(ctx, kc); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			if _, err := js.KeyValue(ctx, kc.Bucket); err != nil {
				return fmt.Errorf("engine: bucket %s: %w", kc.Bucket, err)
			}
		}
	}
	return nil
}
