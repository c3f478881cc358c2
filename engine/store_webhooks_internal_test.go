package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestPruneReadsByItsIndex: the hourly prune of ended webhook deliveries
// finds them through webhook_deliveries_done, not by scanning every
// delivery kept (0.2 s a million rows, holding SQLite's one writer).
func TestPruneReadsByItsIndex(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "wxflow.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var plan []struct {
		ID, Parent, NotUsed int
		Detail              string
	}
	if err := s.db.SelectContext(ctx, &plan, "EXPLAIN QUERY PLAN "+fmt.Sprintf(pruneDeliveries, 1000), "2026-01-01"); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range plan {
		lines = append(lines, p.Detail)
		if strings.HasPrefix(p.Detail, "SCAN webhook_deliveries") {
			t.Errorf("the prune scans the table: %q", lines)
		}
	}
	if !strings.Contains(strings.Join(lines, "\n"), "USING INDEX webhook_deliveries_done") {
		t.Fatalf("the prune does not read by webhook_deliveries_done: %q", lines)
	}
}
