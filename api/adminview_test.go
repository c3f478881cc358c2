package api

import (
	"strings"
	"testing"
	"time"

	"github.com/wxflow/wxflow/workers"
)

func TestAdminViewFormats(t *testing.T) {
	for _, tc := range []struct {
		name, got, want string
	}{
		{"yuan", yuanFen(1234), "¥12.34 (1234 fen)"},
		{"yuan, fen only", yuanFen(5), "¥0.05 (5 fen)"},
		{"yuan, zero", yuanFen(0), "¥0.00 (0 fen)"},
		{"yuan, whole", yuanFen(100), "¥1.00 (100 fen)"},
		{"yuan, negative", yuanFen(-250), "¥-2.50 (-250 fen)"},
		{"input", yuanInput(1234), "12.34"},
		{"took, issue's example", tookShort(14630092 * time.Nanosecond), "14.6 ms"},
		{"took, under a millisecond", tookShort(830 * time.Microsecond), "0.8 ms"},
		{"took, seconds", tookShort(1254 * time.Millisecond), "1.25 s"},
		{"at", atUTC(time.Date(2026, 3, 4, 13, 5, 6, 789e6, time.FixedZone("CST", 8*3600))), "2026-03-04 05:05:06.789"},
		{"day", dayUTC(time.Date(2026, 3, 4, 1, 5, 6, 0, time.FixedZone("CST", 8*3600))), "2026-03-03 17:05:06 UTC"},
		{"asked", askedLine([]workers.Asked{{API: "refund", Answer: "PROCESSING"}, {API: "refund query", Answer: "SUCCESS"}}), "refund PROCESSING → refund query SUCCESS"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestParseYuan(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "12.34", want: 1234},
		{in: "12.3", want: 1230},
		{in: "12", want: 1200},
		{in: " ¥ 0.01 ", want: 1},
		{in: "¥10000000", want: 1_000_000_000},
		{in: "007.50", want: 750},
		{in: "0", wantErr: "more than zero"},
		{in: "0.00", wantErr: "more than zero"},
		{in: "10000000.01", wantErr: "at most"},
		{in: "99999999999", wantErr: "yuan"},
		{in: "12.345", wantErr: "yuan"},
		{in: "12.", wantErr: "yuan"},
		{in: ".5", wantErr: "yuan"},
		{in: "-1", wantErr: "yuan"},
		{in: "+1", wantErr: "yuan"},
		{in: "1e3", wantErr: "yuan"},
		{in: "1,000", wantErr: "yuan"},
		{in: "１２", wantErr: "yuan"},
		{in: "12 34", wantErr: "yuan"},
		{in: "", wantErr: "yuan"},
		{in: "NaN", wantErr: "yuan"},
		{in: "0x10", wantErr: "yuan"},
	} {
		got, err := parseYuan(tc.in)
		switch {
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %d %v, want %d", tc.in, got, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: %d %v, want an error with %q", tc.in, got, err, tc.wantErr)
		}
	}
}

// FuzzParseYuan: whatever the refund form's amount field holds, parseYuan
// never panics; what it accepts is a positive amount within bounds, which
// the page writes back (yuanInput) as text that reads as the same fen.
func FuzzParseYuan(f *testing.F) {
	for _, seed := range []string{"12.34", "0.01", "¥1", "1e2", "-0", "9223372036854775807", "12.", "", "１"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fen, err := parseYuan(s)
		if err != nil {
			if fen != 0 {
				t.Fatalf("%q: refused with %d fen", s, fen)
			}
			return
		}
		if fen <= 0 || fen > maxAmountFen {
			t.Fatalf("%q: %d fen accepted", s, fen)
		}
		back, err := parseYuan(yuanInput(fen))
		if err != nil || back != fen {
			t.Fatalf("%q: %d fen written as %q reads as %d (%v)", s, fen, yuanInput(fen), back, err)
		}
	})
}
