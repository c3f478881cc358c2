package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// LedgerFile is the simulator's ledger in Config.LedgerDir: every order and
// refund it knows, so a restarted simulator remembers them as WeChat does
// (a refund of an order paid before the restart is a refund, not
// ORDERNOTEXIST), and prints its bills from them.
const LedgerFile = "ledger.jsonl"

// The ledger is a journal: one JSON line per change of an order or a
// refund (the record whole, as it is after the change), appended with one
// write while s.mu is held, so a killed process loses nothing it answered
// (the kernel has the line; only a machine crash may lose the last ones).
// At start the journal is read, the last line of each record winning, a
// torn last line skipped, and written back compacted (one line per record,
// through a temporary file renamed over it). Notifications still to be
// delivered and codes are not kept: after a restart WeChat's retries of
// them are lost (the reconciler's queries find those payments).

// ledgerLine is one line of the journal.
type ledgerLine struct {
	Order  *ledgerOrder  `json:"order,omitempty"`
	Refund *ledgerRefund `json:"refund,omitempty"`
	// Seq is the simulator's id counter when the line was written: a
	// restarted simulator goes on from the largest, so WeChat's ids stay unique.
	Seq int `json:"seq"`
}

// ledgerOrder is an order with the fields /sim/state does not show.
type ledgerOrder struct {
	order
	Fingerprint string `json:"fingerprint"`
}

// ledgerRefund is a refund with the fields /sim/state does not show.
type ledgerRefund struct {
	refund
	SignType string `json:"sign_type,omitempty"`
}

// ledger appends to the journal; nil when the simulator keeps no ledger.
type ledger struct {
	f    *os.File
	path string
}

// openLedger reads dir's journal into s (the caller is New, before any
// request), compacts it and opens it for appending.
func (s *Sim) openLedger(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sim: ledger: %w", err)
	}
	path := filepath.Join(dir, LedgerFile)
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sim: ledger: %w", err)
	}
	lines := bytes.Split(raw, []byte("\n"))
	var refunds []*refund
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var l ledgerLine
		if err := json.Unmarshal(line, &l); err != nil {
			if i == len(lines)-1 {
				s.log.Warn("sim ledger: torn last line skipped", "file", path)
				continue
			}
			return fmt.Errorf("sim: ledger %s line %d: %w", path, i+1, err)
		}
		s.seq = max(s.seq, l.Seq)
		if l.Order != nil {
			o := l.Order.order
			o.Fingerprint = l.Order.Fingerprint
			s.orders[okey(o.MchID, o.OutTradeNo)] = &o
			s.byPrepay[o.PrepayID] = &o
		}
		if l.Refund != nil {
			rf := l.Refund.refund
			rf.SignType = l.Refund.SignType
			refunds = append(refunds, &rf)
		}
	}
	// A ledger of a single-merchant simulator has refunds without their
	// merchant: it is their order's (one merchant, one order per number).
	byNo := map[string]*order{}
	for _, o := range s.orders {
		byNo[o.OutTradeNo] = o
	}
	for _, rf := range refunds {
		if rf.MchID == "" {
			if o := byNo[rf.OutTradeNo]; o != nil {
				rf.MchID, rf.SubMchID, rf.AppID, rf.SubAppID = o.MchID, o.SubMchID, o.AppID, o.SubAppID
			}
		}
		s.refunds[okey(rf.MchID, rf.OutRefundNo)] = rf
	}
	for _, rf := range s.refunds {
		if o := s.orders[okey(rf.MchID, rf.OutTradeNo)]; o != nil && rf.Status == "PROCESSING" {
			o.refunding++
		}
	}
	if err := s.compactLedger(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sim: ledger: %w", err)
	}
	s.ledger = &ledger{f: f, path: path}
	if len(s.orders)+len(s.refunds) > 0 {
		s.log.Info("sim ledger loaded", "file", path, "orders", len(s.orders), "refunds", len(s.refunds))
	}
	return nil
}

// compactLedger rewrites the journal with one line per record.
func (s *Sim) compactLedger(path string) error {
	var b bytes.Buffer
	keys := make([]string, 0, len(s.orders))
	for k := range s.orders {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.Write(s.orderLine(s.orders[k]))
	}
	keys = keys[:0]
	for k := range s.refunds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.Write(s.refundLine(s.refunds[k]))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("sim: ledger: %w", err)
	}
	if f, err := os.Open(tmp); err == nil {
		_ = f.Sync()
		f.Close()
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("sim: ledger: %w", err)
	}
	return nil
}

func (s *Sim) orderLine(o *order) []byte {
	b, _ := json.Marshal(ledgerLine{Order: &ledgerOrder{order: *o, Fingerprint: o.Fingerprint}, Seq: s.seq})
	return append(b, '\n')
}

func (s *Sim) refundLine(rf *refund) []byte {
	b, _ := json.Marshal(ledgerLine{Refund: &ledgerRefund{refund: *rf, SignType: rf.SignType}, Seq: s.seq})
	return append(b, '\n')
}

// keepOrder journals an order as it is now; the caller holds s.mu.
func (s *Sim) keepOrder(o *order) {
	if s.ledger != nil {
		s.appendLedger(s.orderLine(o))
	}
}

// keepRefund journals a refund as it is now; the caller holds s.mu.
func (s *Sim) keepRefund(rf *refund) {
	if s.ledger != nil {
		s.appendLedger(s.refundLine(rf))
	}
}

func (s *Sim) appendLedger(line []byte) {
	if _, err := s.ledger.f.Write(line); err != nil {
		s.log.Warn("sim ledger: not written", "file", s.ledger.path, "err", err)
	}
}

// resumeRefunds settles, after the usual delay, the refunds a restart left
// processing; the ledger knows them, WeChat's bank still pays them.
func (s *Sim) resumeRefunds(ctx context.Context) {
	s.mu.Lock()
	var pending []string
	for no, rf := range s.refunds {
		if rf.Status == "PROCESSING" {
			pending = append(pending, no)
		}
	}
	s.mu.Unlock()
	for _, no := range pending {
		job := func(ctx context.Context) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.scaled(s.cfg.RefundDelay)):
			}
			s.settleRefund(no)
		}
		select {
		case s.work <- job:
		case <-ctx.Done():
			return
		}
	}
}

// closeLedger closes the journal.
func (s *Sim) closeLedger() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ledger != nil {
		_ = s.ledger.f.Close()
		s.ledger = nil
	}
}
