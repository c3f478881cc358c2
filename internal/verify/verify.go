// Package verify checks the money invariants that need more than the store
// (engine.Store.Verify checks those): every event row in the event stream
// exactly once, and no merchant secret in the logs. `wxflow verify` runs
// them after the store's own checks.
package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/wechat"
)

// Stream checks that every event row is in the event stream exactly once.
func Stream(ctx context.Context, js jetstream.JetStream, store *engine.Store) ([]engine.Breach, error) {
	info, seen, err := readEventStream(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("verify: reading the event stream: %w", err)
	}
	// Events published before the stream's oldest message have aged out of
	// it (WXFLOW_EVENT_RETENTION); a minute's margin covers the moment
	// between an event's publication and its sent_at.
	since := time.Time{}
	if !info.State.FirstTime.IsZero() {
		since = info.State.FirstTime.Add(time.Minute)
	}
	rows, err := store.EventsSentSince(ctx, since)
	if err != nil {
		return nil, err
	}
	var out []engine.Breach
	for _, r := range rows {
		switch n := seen[r.ID]; {
		case n == 0 && info.State.FirstTime.IsZero():
		case n == 0:
			out = append(out, engine.Breach{OrderID: r.OrderID, Rule: "event_missing_from_stream", Detail: r.ID})
		case n > 1:
			out = append(out, engine.Breach{OrderID: r.OrderID, Rule: "event_doubled_in_stream", Detail: fmt.Sprintf("%s %d times", r.ID, n)})
		}
	}
	return out, nil
}

// readEventStream reads the event stream whole and counts each event id.
// A cluster that has just lost or regained a node may leave a JetStream
// request unanswered while it elects leaders, so a failed read is started
// over for up to a minute; a stream that does not exist is not waited for.
func readEventStream(ctx context.Context, js jetstream.JetStream) (*jetstream.StreamInfo, map[string]int, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		info, seen, err := readEventStreamOnce(ctx, js)
		if err == nil || errors.Is(err, jetstream.ErrStreamNotFound) || ctx.Err() != nil || time.Now().After(deadline) {
			return info, seen, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func readEventStreamOnce(ctx context.Context, js jetstream.JetStream) (*jetstream.StreamInfo, map[string]int, error) {
	stream, err := js.Stream(ctx, engine.EventStream)
	if err != nil {
		return nil, nil, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, nil, err
	}
	seen, err := countEvents(ctx, stream, info.State.Msgs)
	if err != nil {
		return nil, nil, err
	}
	return info, seen, nil
}

// countEvents reads the stream's first n messages and counts each event id.
func countEvents(ctx context.Context, stream jetstream.Stream, n uint64) (map[string]int, error) {
	seen := map[string]int{}
	if n == 0 {
		return seen, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	for range n {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		// On a cluster the consumer may live on another node whose interest
		// has not reached ours yet: its first pulls find no responder. This
		// waits on the same consumer; starting the read over (as
		// readEventStream does for other failures) would only make a new
		// consumer with the same wait ahead of it.
		for wait := 0; errors.Is(err, nats.ErrNoResponders) && wait < 50; wait++ {
			time.Sleep(100 * time.Millisecond)
			msg, err = cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		}
		if err != nil {
			return nil, err
		}
		var ev struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(msg.Data(), &ev) == nil {
			seen[ev.ID]++
		}
	}
	return seen, nil
}

// Logs looks for every merchant's secrets in log files: the appsecret of
// each app, the API keys and a line of the private key of each merchant and
// provider of merchantDir (a folder of merchants, or one merchant's folder
// named merchantName).
func Logs(merchantName, merchantDir string, files []string) ([]engine.Breach, error) {
	reg, err := wechat.LoadRegistry(merchantDir, merchantName)
	if err != nil {
		return nil, fmt.Errorf("verify: the merchants' secrets are needed to look for them: %w", err)
	}
	secrets := map[string]string{}
	for _, m := range append(reg.Merchants(), reg.Providers()...) {
		for _, a := range m.OwnApps() {
			secrets[m.Name+"'s appsecret of "+a.AppID] = string(a.AppSecret)
		}
		if m.Partner() {
			continue // its keys are its provider's
		}
		secrets[m.Name+"'s api_key"], secrets[m.Name+"'s api_v3_key"] = string(m.APIKey), string(m.APIv3Key)
		dir := merchantDir
		if _, err := os.Stat(filepath.Join(merchantDir, wechat.MerchantFile)); err != nil {
			dir = filepath.Join(merchantDir, m.Name)
		}
		if raw, err := os.ReadFile(filepath.Join(dir, wechat.PrivateKeyFile)); err == nil {
			if lines := bytes.Split(raw, []byte("\n")); len(lines) > 2 {
				secrets[m.Name+"'s private key"] = string(lines[1]) // a line of the key's body
			}
		}
	}
	var out []engine.Breach
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for name, secret := range secrets {
			if secret != "" && bytes.Contains(data, []byte(secret)) {
				out = append(out, engine.Breach{Rule: "secret_in_logs", Detail: fmt.Sprintf("%s in %s", name, f)})
			}
		}
	}
	return out, nil
}
