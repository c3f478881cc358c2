package cli

import (
	"testing"
	"time"

	"github.com/wxflow/wxflow/engine"
)

// TestParseBooksDay: today and yesterday are Beijing's, whatever the zone of
// the clock.
func TestParseBooksDay(t *testing.T) {
	now := time.Date(2024, 3, 10, 16, 30, 0, 0, time.UTC) // 00:30 on 11 March in Beijing
	for in, want := range map[string]engine.Day{"today": "2024-03-11", "Yesterday": "2024-03-10", "2024-02-29": "2024-02-29"} {
		if got, err := parseBooksDay(in, now); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"tomorrow", "2024-02-30", "20240310", ""} {
		if _, err := parseBooksDay(bad, now); err == nil {
			t.Errorf("%q passed", bad)
		}
	}
}

// TestCSVCells: a text a spreadsheet would run as a formula stays text.
func TestCSVCells(t *testing.T) {
	for in, want := range map[string]string{"=HYPERLINK(\"x\")": "'=HYPERLINK(\"x\")", "+1": "'+1", "@SUM(A1)": "'@SUM(A1)", "-2": "'-2",
		"T-1": "T-1", "": ""} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}
