package stack

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
)

func TestStuckDeadlines(t *testing.T) {
	tests := []struct {
		given   string
		want    map[engine.State]time.Duration
		wantErr bool
	}{
		{given: "", want: engine.DefaultDeadlines},
		{given: "created=5m, refunding=1h", want: map[engine.State]time.Duration{engine.Created: 5 * time.Minute,
			engine.Authorized: time.Minute, engine.Prepaid: time.Minute, engine.Signed: 0, engine.Refunding: time.Hour}},
		{given: "notified=1m", wantErr: true},
		{given: "created", wantErr: true},
		{given: "created=soon", wantErr: true},
		{given: "created=-1m", wantErr: true},
	}
	for _, tc := range tests {
		s := Settings{StuckAfter: tc.given}
		got, err := s.Deadlines()
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err = %v", tc.given, err)
			continue
		}
		for st, d := range tc.want {
			if got[st] != d {
				t.Errorf("%q: %s = %s, want %s", tc.given, st, got[st], d)
			}
		}
	}
}

// TestListenGivesWay: a default address already in use gives way to a free
// port of the same host; an address the user chose does not.
func TestListenGivesWay(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := listen(taken.Addr().String(), false); err == nil {
		t.Fatal("listening on a taken address the user chose succeeded")
	}
	ln, err := listen(taken.Addr().String(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() == taken.Addr().String() || !strings.HasPrefix(ln.Addr().String(), "127.0.0.1:") {
		t.Fatalf("gave way to %s", ln.Addr())
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		given   Settings
		wantErr string
	}{
		{name: "defaults", given: Settings{}},
		{name: "postgres", given: Settings{DBURL: "postgres://u@127.0.0.1/test"}},
		{name: "bare path", given: Settings{DBURL: "/var/lib/wxflow.db"}},
		{name: "mysql", given: Settings{DBURL: "mysql://x"}, wantErr: "--db"},
		{name: "nats scheme", given: Settings{NATSURL: "http://127.0.0.1:4222"}, wantErr: "--nats"},
		{name: "cluster", given: Settings{NATSURL: "nats://a:1,nats://b:2"}},
		{name: "replicas", given: Settings{Replicas: 7}, wantErr: "--nats-replicas"},
		{name: "http", given: Settings{HTTPAddr: "8080"}, wantErr: "--http"},
		{name: "log", given: Settings{LogFormat: "xml"}, wantErr: "--log"},
		{name: "level", given: Settings{LogLevel: "loud"}, wantErr: "--log-level"},
		{name: "negative", given: Settings{ReconcileRefundAfter: -time.Second}, wantErr: "--reconcile-refund-after"},
	}
	for _, tc := range tests {
		s := tc.given
		s.Resolve()
		err := s.Validate()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}
