package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxflow/wxflow/engine"
)

// Crossings is the merchant check of a demo run: nothing of one merchant's
// order may land on another's. Found lists every crossing; Checked counts
// the records looked at (WeChat's orders, refunds and notifications, and
// wxflow's events).
type Crossings struct {
	Checked int      `json:"checked"`
	Found   []string `json:"found,omitempty"`
	// EventsChecked is false when the run had no event stream to read.
	EventsChecked bool `json:"events_checked"`
}

func (c Crossings) String() string {
	s := fmt.Sprintf("crossings: %d (%d checked: WeChat's orders, refunds and notifications", len(c.Found), c.Checked)
	if c.EventsChecked {
		s += ", wxflow's events"
	}
	return s + ")"
}

// OK says whether nothing crossed.
func (c Crossings) OK() bool { return len(c.Found) == 0 }

// AuditCrossings checks, for every order of the run on a lane (a run with a
// registry): wxflow recorded it under the lane's merchant and app; WeChat's
// record of its out_trade_no, and of each of its refunds, names the lane's
// merchant (a sub-merchant: its provider's mchid and its own sub_mchid) and
// app (appid, or sp_appid and sub_appid); every notification WeChat sent of
// it went to /wechat/notify/<its merchant>/ for that merchant's mchid; and,
// with cfg.Events, every event of it is on wxflow.evt.<its merchant>.….
func AuditCrossings(ctx context.Context, cfg Config, results []Result) (Crossings, error) {
	var c Crossings
	st, err := readSimState(ctx, cfg)
	if err != nil {
		return c, fmt.Errorf("WeChat's records: %w", err)
	}
	api := &Client{Base: cfg.APIURL, HTTP: http.DefaultClient, Key: cfg.ShopKey}
	cross := func(format string, args ...any) { c.Found = append(c.Found, fmt.Sprintf(format, args...)) }
	type owner struct {
		lane Lane
		id   engine.OrderID
	}
	byTrade, byRefund, byOrder := map[string]owner{}, map[string]owner{}, map[engine.OrderID]Lane{}
	for _, r := range results {
		if r.Lane == nil || r.OrderID == "" {
			continue
		}
		var v OrderView
		if err := api.Do(ctx, http.MethodGet, "/v1/orders/"+string(r.OrderID), nil, &v); err != nil {
			return c, err
		}
		c.Checked++
		if v.Order.Merchant != r.Lane.Merchant || v.Order.AppID != r.Lane.AppID {
			cross("order %s: wxflow has it under merchant %s, app %s; the shop asked for %s, app %s",
				r.OrderID, v.Order.Merchant, v.Order.AppID, r.Lane.Merchant, r.Lane.AppID)
		}
		byTrade[v.Order.OutTradeNo] = owner{*r.Lane, r.OrderID}
		byOrder[r.OrderID] = *r.Lane
		for _, rf := range v.Refunds {
			byRefund[rf.OutRefundNo] = owner{*r.Lane, r.OrderID}
		}
	}
	ident := func(mch, sub, app, subApp string) string {
		return fmt.Sprintf("mchid %s sub_mchid %q appid %s sub_appid %q", mch, sub, app, subApp)
	}
	want := func(l Lane) string { return ident(l.MchID, l.SubMchID, l.WantAppID, l.WantSubAppID) }
	for _, o := range st.Orders {
		w, ok := byTrade[o.OutTradeNo]
		if !ok {
			continue
		}
		c.Checked++
		if got := ident(o.MchID, o.SubMchID, o.AppID, o.SubAppID); got != want(w.lane) {
			cross("order %s (%s): WeChat has it as %s, want %s", w.id, w.lane, got, want(w.lane))
		}
	}
	for _, rf := range st.Refunds {
		w, ok := byTrade[rf.OutTradeNo]
		if !ok {
			if w, ok = byRefund[rf.OutRefundNo]; !ok {
				continue
			}
		}
		c.Checked++
		if got := ident(rf.MchID, rf.SubMchID, rf.AppID, rf.SubAppID); got != want(w.lane) {
			cross("refund %s of order %s (%s): WeChat has it as %s, want %s", rf.OutRefundNo, w.id, w.lane, got, want(w.lane))
		}
	}
	for _, n := range st.Notifications {
		w, ok := byTrade[n.Key]
		if strings.HasSuffix(n.Kind, "-refund") || !ok {
			if w, ok = byRefund[n.Key]; !ok {
				continue
			}
		}
		c.Checked++
		if !strings.Contains(n.URL, "/wechat/notify/"+w.lane.Merchant+"/") || n.MchID != w.lane.MchID {
			cross("%s notification of order %s (%s): sent to %s for mchid %s, want /wechat/notify/%s/… for mchid %s",
				n.Kind, w.id, w.lane, n.URL, n.MchID, w.lane.Merchant, w.lane.MchID)
		}
	}
	if cfg.Events != nil {
		n, found, err := eventCrossings(ctx, cfg.Events, byOrder)
		if err != nil {
			return c, fmt.Errorf("the event stream: %w", err)
		}
		c.EventsChecked, c.Checked, c.Found = true, c.Checked+n, append(c.Found, found...)
	}
	return c, nil
}

// eventCrossings reads the event stream whole and checks each event of the
// run's orders: its subject names the order's merchant, and so does the
// order it carries.
func eventCrossings(ctx context.Context, js jetstream.JetStream, lanes map[engine.OrderID]Lane) (int, []string, error) {
	stream, err := js.Stream(ctx, engine.EventStream)
	if err != nil {
		return 0, nil, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, nil, err
	}
	if info.State.Msgs == 0 {
		return 0, nil, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, nil, err
	}
	checked, seen := 0, map[engine.OrderID]bool{}
	var found []string
	for range info.State.Msgs {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			return checked, found, err
		}
		var ev engine.Event
		if json.Unmarshal(msg.Data(), &ev) != nil {
			continue
		}
		l, ok := lanes[ev.OrderID]
		if !ok {
			continue
		}
		checked++
		seen[ev.OrderID] = true
		wantSubject := engine.EventSubject(l.Merchant, ev.Type, ev.OrderID)
		if msg.Subject() != wantSubject || ev.Order.Merchant != l.Merchant {
			found = append(found, fmt.Sprintf("event %s of order %s (%s) on %s naming merchant %s, want %s",
				ev.ID, ev.OrderID, l, msg.Subject(), ev.Order.Merchant, wantSubject))
		}
	}
	for id, l := range lanes {
		if !seen[id] {
			found = append(found, fmt.Sprintf("order %s (%s): no event of it in the event stream", id, l))
		}
	}
	return checked, found, nil
}
