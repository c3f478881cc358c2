package stack

import (
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
