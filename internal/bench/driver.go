package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/demo"
)

// driver is the shop and its payers: it creates orders over the shop API,
// follows their events on NATS as a shop would, pays each at the
// simulator once it is signed, and refunds some. It runs in the bench's
// own process, whose CPU is not wxflow's.
type driver struct {
	api, payer  *demo.Client
	refundEvery int
	payAPI      string
	// merchants take the orders round-robin; ordersOf counts the recorded
	// orders of each (same index).
	merchants []string
	ordersOf  []atomic.Int64

	mu     sync.Mutex
	tracks map[engine.OrderID]*track

	latMu    sync.Mutex
	lat      map[string]*histogram
	interval histogram // created → notified of the orders finished since the last sample

	done                 atomic.Int64 // orders through their lifecycle (recorded ones)
	v2, v3, v2Ref, v3Ref atomic.Int64 // of the recorded orders
}

// track is what the driver knows of one order: when each event happened
// (by the event's own timestamp, the commit of its transition), and a
// channel that wakes the goroutine waiting for it.
type track struct {
	mu       sync.Mutex
	at       map[engine.EventType]time.Time
	prepayID string
	events   chan engine.EventType
}

// driverEvent is what the driver reads of each event.
type driverEvent struct {
	Type    engine.EventType `json:"type"`
	OrderID engine.OrderID   `json:"order_id"`
	At      time.Time        `json:"at"`
	Order   struct {
		PrepayID string `json:"prepay_id"`
	} `json:"order"`
}

func newDriver(api, payer *demo.Client, payAPI string, refundEvery int, merchants []string) *driver {
	return &driver{api: api, payer: payer, payAPI: payAPI, refundEvery: refundEvery, merchants: merchants,
		ordersOf: make([]atomic.Int64, len(merchants)), tracks: map[engine.OrderID]*track{}, lat: map[string]*histogram{}}
}

// byMerchant is how many recorded orders each merchant had.
func (d *driver) byMerchant() map[string]int {
	out := map[string]int{}
	for i, m := range d.merchants {
		out[m] = int(d.ordersOf[i].Load())
	}
	return out
}

func (d *driver) trackOf(id engine.OrderID) *track {
	d.mu.Lock()
	defer d.mu.Unlock()
	tr, ok := d.tracks[id]
	if !ok {
		tr = &track{at: map[engine.EventType]time.Time{}, events: make(chan engine.EventType, 16)}
		d.tracks[id] = tr
	}
	return tr
}

func (d *driver) forget(id engine.OrderID) {
	d.mu.Lock()
	delete(d.tracks, id)
	d.mu.Unlock()
}

// follow subscribes to every event; an event of an order no one waits for
// (one that came before the API's answer) is kept until someone does.
func (d *driver) follow(nc *nats.Conn) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(engine.EventSubjectPrefix+">", func(m *nats.Msg) {
		var ev driverEvent
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		tr := d.trackOf(ev.OrderID)
		tr.mu.Lock()
		if _, seen := tr.at[ev.Type]; !seen {
			tr.at[ev.Type] = ev.At
		}
		if ev.Order.PrepayID != "" {
			tr.prepayID = ev.Order.PrepayID
		}
		tr.mu.Unlock()
		select {
		case tr.events <- ev.Type:
		default:
		}
	})
	if err != nil {
		return nil, err
	}
	// Events of orders the driver never learns of must not pile up.
	return sub, sub.SetPendingLimits(1<<20, 1<<30)
}

// waitFor waits until the order has had an event of type t; it fails when
// the order closed or failed instead.
func (d *driver) waitFor(ctx context.Context, tr *track, id engine.OrderID, t engine.EventType) error {
	for {
		tr.mu.Lock()
		_, done := tr.at[t]
		_, failed := tr.at[engine.EventFailed]
		_, closed := tr.at[engine.EventClosed]
		tr.mu.Unlock()
		switch {
		case done:
			return nil
		case failed || closed:
			return fmt.Errorf("order %s ended failed or closed, waiting for %s", id, t)
		}
		select {
		case <-tr.events:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("order %s waiting for %s: %w", id, t, context.Cause(ctx))
		}
	}
}

// The transitions whose latency the report gives, and created → notified.
var steps = [][2]engine.EventType{{engine.EventCreated, engine.EventAuthorized}, {engine.EventAuthorized, engine.EventPrepaid},
	{engine.EventPrepaid, engine.EventSigned}, {engine.EventSigned, engine.EventNotified}, {engine.EventCreated, engine.EventNotified},
	{engine.EventRefunding, engine.EventRefunded}}

// order drives order i through its lifecycle: create (with an openid, so
// it is authorized at once), signed, the payer pays, notified, and a full
// refund of every refundEvery-th. prefix keeps the warm-up's openids apart.
// The merchants take the orders round-robin, two in a row each (orders 2k
// and 2k+1), so that with mixed pay APIs (v2 for even i, v3 for odd) every
// merchant has both. It names no app: a sub-merchant's order is then paid
// in an app of its own of the payer's kind (an Official Account's openid),
// else in its provider's (sp_openid).
func (d *driver) order(ctx context.Context, prefix string, i int, record bool) error {
	m := (i / 2) % len(d.merchants)
	payAPI := d.payAPI
	if payAPI == "mixed" {
		payAPI = []string{"v2", "v3"}[i%2]
	}
	var created struct{ Order engine.Order }
	amount := int64(100 + i%900)
	body := map[string]any{"amount_fen": amount, "description": "bench", "openid": "oBENCH-" + prefix + strconv.Itoa(i), "pay_api": payAPI,
		"merchant": d.merchants[m]}
	if err := d.api.Do(ctx, http.MethodPost, "/v1/orders", body, &created); err != nil {
		return err
	}
	id := created.Order.ID
	tr := d.trackOf(id)
	defer d.forget(id)
	if err := d.waitFor(ctx, tr, id, engine.EventSigned); err != nil {
		return err
	}
	tr.mu.Lock()
	prepayID := tr.prepayID
	tr.mu.Unlock()
	if err := d.payer.Do(ctx, http.MethodPost, "/sim/pay", map[string]string{"prepay_id": prepayID}, nil); err != nil {
		return err
	}
	if err := d.waitFor(ctx, tr, id, engine.EventNotified); err != nil {
		return err
	}
	refund := d.refundEvery > 0 && i%d.refundEvery == 0
	if refund {
		if err := d.api.Do(ctx, http.MethodPost, "/v1/orders/"+string(id)+"/refunds", map[string]any{"amount_fen": amount}, nil); err != nil {
			return err
		}
		if err := d.waitFor(ctx, tr, id, engine.EventRefunded); err != nil {
			return err
		}
	}
	if !record {
		return nil
	}
	switch {
	case payAPI == "v2" && refund:
		d.v2Ref.Add(1)
	case payAPI == "v3" && refund:
		d.v3Ref.Add(1)
	}
	if payAPI == "v2" {
		d.v2.Add(1)
	} else {
		d.v3.Add(1)
	}
	d.ordersOf[m].Add(1)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	d.latMu.Lock()
	defer d.latMu.Unlock()
	for _, step := range steps {
		a, okA := tr.at[step[0]]
		b, okB := tr.at[step[1]]
		if !okA || !okB {
			continue
		}
		name := string(step[0]) + "_" + string(step[1]) // plain ASCII: jq reads .latency_ms.created_notified
		if d.lat[name] == nil {
			d.lat[name] = &histogram{}
		}
		d.lat[name].add(b.Sub(a))
		if step[0] == engine.EventCreated && step[1] == engine.EventNotified {
			d.interval.add(b.Sub(a))
		}
	}
	d.done.Add(1)
	return nil
}

// takeInterval returns the created → notified percentiles since the last call and starts anew.
func (d *driver) takeInterval() Percentiles {
	d.latMu.Lock()
	defer d.latMu.Unlock()
	p := d.interval.percentiles()
	d.interval = histogram{}
	return p
}

// latencies are the percentiles of every transition seen.
func (d *driver) latencies() map[string]Percentiles {
	d.latMu.Lock()
	defer d.latMu.Unlock()
	out := map[string]Percentiles{}
	for k, v := range d.lat {
		out[k] = v.percentiles()
	}
	return out
}
