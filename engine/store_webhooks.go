package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The store's webhook endpoints and deliveries (migration 00007).
//
// Ordering per order and endpoint: a pending delivery is claimed only when no
// delivery of a smaller seq of the same order and endpoint is pending (the
// head). To keep the rows waiting behind a head out of every claim's scan, a
// head that is rescheduled pushes the rows behind it to its next_at, the
// deliverer parks the rows queued behind a pending head (ParkWebhookDeliveries),
// a resend parks the rows behind each order's first, and a head that ends
// (delivered, failed) wakes the rows parked behind it (parked).

const deliveryColumns = `d.id, d.endpoint_id, d.event_id, d.event_type, d.order_id, d.seq, d.state, d.attempts,
	d.created_at, d.queued_at, d.next_at, d.last_attempt_at, d.last_status, d.last_error, d.done_at`

// queueWebhooks queues ev for every live endpoint of every shop acting for
// its merchant (webhook_routes), inside the transaction that writes the
// event: an event is queued exactly when it is committed, once per endpoint
// (the unique endpoint and event id). It is one statement on one index,
// which inserts nothing when the merchant has no endpoint: a subquery here
// (a join to shop_merchants, parking the row behind its order's head) cost
// SQLite several times the outbox row's insert, for every event of every
// deployment, webhooks or not. The deliverer parks rows instead
// ([Store.ParkWebhookDeliveries]).
func (s *Store) queueWebhooks(ctx context.Context, tx *sqlx.Tx, ev Event, now time.Time) error {
	now = now.UTC()
	_, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, order_id, seq,
		state, attempts, created_at, queued_at, next_at)
		SELECT r.endpoint_id, ?, ?, ?, ?, 'pending', 0, ?, ?, ? FROM webhook_routes r WHERE r.merchant = ?
		ON CONFLICT (endpoint_id, event_id) DO NOTHING`),
		ev.ID, ev.Type, ev.OrderID, ev.Seq, now, now, now, ev.Order.Merchant)
	return err
}

// ParkWebhookDeliveries parks every due delivery that waits behind an
// earlier pending one of its order and endpoint: it is due again at until
// at the latest, and as soon as that earlier one ends (delivered or given
// up wakes the rows parked behind it). It returns how many it parked, and
// writes only when there are some. The claims then read only the rows that
// may go: after a burst (a resend, a shop's busy hour) each order's first.
// A row woken between this read and its write on PostgreSQL stays parked
// until until: late, never lost.
func (s *Store) ParkWebhookDeliveries(ctx context.Context, now, until time.Time) (int, error) {
	now, until = now.UTC(), until.UTC()
	const waiting = `state = 'pending' AND next_at <= ? AND EXISTS (SELECT 1 FROM webhook_deliveries h
		WHERE h.endpoint_id = webhook_deliveries.endpoint_id AND h.order_id = webhook_deliveries.order_id
			AND h.state = 'pending' AND h.seq < webhook_deliveries.seq)`
	var found []int64
	if err := s.db.SelectContext(ctx, &found, s.db.Rebind(`SELECT id FROM webhook_deliveries WHERE `+waiting+` LIMIT 1`), now); err != nil || len(found) == 0 {
		return 0, err
	}
	// In chunks, each its own short write: a backlog of a worker that was
	// down does not hold SQLite's one writer for long.
	const chunk = 500
	total := 0
	for {
		n, err := s.parkChunk(ctx, waiting, now, until, chunk)
		total += n
		if err != nil || n < chunk {
			return total, err
		}
	}
}

func (s *Store) parkChunk(ctx context.Context, waiting string, now, until time.Time, chunk int) (int, error) {
	done, err := s.writerTurn(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	r, err := s.db.ExecContext(ctx, s.db.Rebind(fmt.Sprintf(`UPDATE webhook_deliveries SET next_at = ?, parked = TRUE
		WHERE id IN (SELECT id FROM webhook_deliveries WHERE `+waiting+` LIMIT %d)`, chunk)), until, now)
	if err != nil {
		return 0, fmt.Errorf("engine: park webhooks: %w", storeError(err))
	}
	n, err := r.RowsAffected()
	return int(n), err
}

// AddWebhookEndpoint stores a new endpoint of an existing shop (made by
// [NewWebhookEndpoint]); [ErrNotFound] when the shop does not exist,
// [ErrTooManyEndpoints] when it has [MaxWebhookEndpoints] live ones. It
// receives the events committed from now on.
func (s *Store) AddWebhookEndpoint(ctx context.Context, ep WebhookEndpoint) error {
	tx, done, err := s.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("engine: add webhook: %w", storeError(err))
	}
	defer done()
	defer tx.Rollback()
	lock := ""
	if s.dialect == Postgres {
		lock = " FOR UPDATE" // two adds at once count one after the other
	}
	var name string
	err = tx.GetContext(ctx, &name, s.db.Rebind(`SELECT name FROM shops WHERE name = ?`+lock), ep.Shop)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("engine: shop %s: %w", ep.Shop, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("engine: add webhook: %w", storeError(err))
	}
	var n int
	if err := tx.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(*) FROM webhook_endpoints WHERE shop = ? AND removed_at IS NULL`), ep.Shop); err != nil {
		return fmt.Errorf("engine: add webhook: %w", storeError(err))
	}
	if n >= MaxWebhookEndpoints {
		return fmt.Errorf("%w: shop %s has %d (remove one first)", ErrTooManyEndpoints, ep.Shop, n)
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO webhook_endpoints (id, shop, url, secret, created_at) VALUES (?, ?, ?, ?, ?)`),
		ep.ID, ep.Shop, ep.URL, ep.Sealed, ep.CreatedAt.UTC()); err != nil {
		return fmt.Errorf("engine: add webhook: %w", storeError(err))
	}
	// A route for each merchant of the shop. A shop's merchants are set
	// when it is made (AddShop); whatever changes them must change the
	// routes of its endpoints too.
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO webhook_routes (merchant, endpoint_id)
		SELECT merchant, ? FROM shop_merchants WHERE shop = ?`), ep.ID, ep.Shop); err != nil {
		return fmt.Errorf("engine: add webhook: %w", storeError(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("engine: add webhook: %w", storeError(err))
	}
	return nil
}

// WebhookEndpoint returns a live endpoint of shop; [ErrNotFound] when the
// shop has none of that id (another shop's is not found either).
func (s *Store) WebhookEndpoint(ctx context.Context, shop, id string) (WebhookEndpoint, error) {
	var ep WebhookEndpoint
	err := s.db.GetContext(ctx, &ep, s.db.Rebind(`SELECT id, shop, url, secret, created_at, removed_at FROM webhook_endpoints
		WHERE id = ? AND shop = ? AND removed_at IS NULL`), id, shop)
	if errors.Is(err, sql.ErrNoRows) {
		return ep, fmt.Errorf("engine: webhook %s of shop %s: %w", id, shop, ErrNotFound)
	} else if err != nil {
		return ep, fmt.Errorf("engine: webhook %s: %w", id, err)
	}
	ep.CreatedAt = ep.CreatedAt.UTC()
	return ep, nil
}

// WebhookEndpoints lists the shop's live endpoints, oldest first, with how
// their deliveries stand.
func (s *Store) WebhookEndpoints(ctx context.Context, shop string) ([]WebhookEndpointStatus, error) {
	var out []WebhookEndpointStatus
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT e.id, e.shop, e.url, e.secret, e.created_at, e.removed_at,
		(SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending') AS pending,
		(SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'delivered') AS delivered,
		(SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'failed') AS failed
		FROM webhook_endpoints e WHERE e.shop = ? AND e.removed_at IS NULL ORDER BY e.created_at, e.id`), shop)
	if err != nil {
		return nil, fmt.Errorf("engine: webhooks of shop %s: %w", shop, err)
	}
	for i := range out {
		out[i].CreatedAt = out[i].CreatedAt.UTC()
	}
	return out, nil
}

// RemoveWebhookEndpoint removes a live endpoint of shop and cancels its
// pending deliveries (a delivery in flight may still arrive); it returns how
// many it cancelled, [ErrNotFound] when the shop has no such endpoint.
func (s *Store) RemoveWebhookEndpoint(ctx context.Context, shop, id string, at time.Time) (int, error) {
	tx, done, err := s.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("engine: remove webhook: %w", storeError(err))
	}
	defer done()
	defer tx.Rollback()
	at = at.UTC()
	r, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE webhook_endpoints SET removed_at = ? WHERE id = ? AND shop = ? AND removed_at IS NULL`), at, id, shop)
	if err != nil {
		return 0, fmt.Errorf("engine: remove webhook: %w", storeError(err))
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return 0, fmt.Errorf("engine: webhook %s of shop %s: %w", id, shop, ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM webhook_routes WHERE endpoint_id = ?`), id); err != nil {
		return 0, fmt.Errorf("engine: remove webhook: %w", storeError(err))
	}
	r, err = tx.ExecContext(ctx, s.db.Rebind(`UPDATE webhook_deliveries SET state = 'cancelled', done_at = ?, lease_owner = NULL, lease_until = NULL
		WHERE endpoint_id = ? AND state = 'pending'`), at, id)
	if err != nil {
		return 0, fmt.Errorf("engine: remove webhook: %w", storeError(err))
	}
	n, _ := r.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("engine: remove webhook: %w", storeError(err))
	}
	return int(n), nil
}

// WebhookClaim asks [Store.ClaimWebhookDeliveries] for due deliveries.
type WebhookClaim struct {
	// Lease names this claim (unique per claim); the outcome of each job is
	// reported under it.
	Lease string
	// Now is the time of the claim; Until when the lease ends, after which
	// another deliverer may claim the job again (its sender died, or is
	// slower than the lease: the delivery is then at least once).
	Now, Until time.Time
	// Limit is the most jobs to claim.
	Limit int
	// PerEndpoint is the most jobs of one endpoint the caller may hold at
	// once, counting Busy, its jobs of each endpoint already in flight: one
	// slow endpoint cannot take every sender.
	PerEndpoint int
	Busy        map[string]int
}

// ClaimWebhookDeliveries claims up to c.Limit due deliveries, each the
// earliest pending one of its order and endpoint and leased by nobody (or
// by a lease that ended), oldest due first, at most c.PerEndpoint per
// endpoint. Claims of several processes never overlap: a row is leased by
// one guarded UPDATE.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, c WebhookClaim) ([]WebhookJob, error) {
	if c.Limit <= 0 || c.PerEndpoint <= 0 {
		return nil, nil
	}
	now := c.Now.UTC()
	var cands []struct {
		ID         int64  `db:"id"`
		EndpointID string `db:"endpoint_id"`
	}
	err := s.db.SelectContext(ctx, &cands, s.db.Rebind(`SELECT id, endpoint_id FROM (
		SELECT d.id, d.endpoint_id, d.next_at,
			ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_at, d.id) AS rn
		FROM webhook_deliveries d
		WHERE d.state = 'pending' AND d.next_at <= ? AND (d.lease_until IS NULL OR d.lease_until <= ?)
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id
				AND p.order_id = d.order_id AND p.seq < d.seq AND p.state = 'pending')
		) c WHERE rn <= ? ORDER BY next_at, id LIMIT ?`), now, now, c.PerEndpoint, c.Limit+len(c.Busy)*c.PerEndpoint)
	if err != nil {
		return nil, fmt.Errorf("engine: due webhooks: %w", err)
	}
	held := map[string]int{}
	var ids []any
	for _, cand := range cands {
		if len(ids) == c.Limit {
			break
		}
		if c.Busy[cand.EndpointID]+held[cand.EndpointID] >= c.PerEndpoint {
			continue
		}
		held[cand.EndpointID]++
		ids = append(ids, cand.ID)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	in := "?" + strings.Repeat(",?", len(ids)-1)
	args := append([]any{c.Lease, c.Until.UTC()}, ids...)
	args = append(args, now)
	if err := s.execWrite(ctx, s.db.Rebind(`UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ?
		WHERE id IN (`+in+`) AND state = 'pending' AND (lease_until IS NULL OR lease_until <= ?)`), args...); err != nil {
		return nil, fmt.Errorf("engine: claim webhooks: %w", storeError(err))
	}
	var jobs []WebhookJob
	err = s.db.SelectContext(ctx, &jobs, s.db.Rebind(`SELECT `+deliveryColumns+`, e.url, e.secret, o.payload, d.lease_owner
		FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN outbox o ON o.event_id = d.event_id
		WHERE d.id IN (`+in+`) AND d.lease_owner = ? ORDER BY d.next_at, d.id`), append(ids, c.Lease)...)
	if err != nil {
		return nil, fmt.Errorf("engine: claimed webhooks: %w", err)
	}
	for i := range jobs {
		fixDelivery(&jobs[i].WebhookDelivery)
	}
	return jobs, nil
}

// WebhookOutcome is what became of one attempt of a claimed delivery.
type WebhookOutcome struct {
	ID    int64
	Lease string
	At    time.Time
	// State is WebhookDelivered, WebhookFailed (given up), or WebhookPending
	// (to be tried again at NextAt).
	State  WebhookState
	NextAt time.Time
	// Status is the endpoint's HTTP status (0: none); Error why it failed.
	Status int
	Error  string
}

// maxDeliveryError bounds the stored reason of a failed attempt.
const maxDeliveryError = 500

// FinishWebhookDelivery records an attempt's outcome and ends the lease.
// It reports false, and changes nothing, when the lease is no longer the
// caller's (it ended and another deliverer claimed the row, or the endpoint
// was removed). A rescheduled delivery pushes the later ones of its order
// along; an ended one wakes them.
func (s *Store) FinishWebhookDelivery(ctx context.Context, o WebhookOutcome) (bool, error) {
	switch o.State {
	case WebhookDelivered, WebhookFailed, WebhookPending:
	default:
		return false, fmt.Errorf("engine: webhook outcome %q", o.State)
	}
	if len(o.Error) > maxDeliveryError {
		o.Error = o.Error[:maxDeliveryError]
	}
	at := o.At.UTC()
	tx, done, err := s.beginWrite(ctx)
	if err != nil {
		return false, fmt.Errorf("engine: finish webhook: %w", storeError(err))
	}
	defer done()
	defer tx.Rollback()
	var row struct {
		EndpointID string  `db:"endpoint_id"`
		OrderID    OrderID `db:"order_id"`
		Seq        int64   `db:"seq"`
	}
	err = tx.GetContext(ctx, &row, s.db.Rebind(`SELECT endpoint_id, order_id, seq FROM webhook_deliveries WHERE id = ? AND lease_owner = ?`), o.ID, o.Lease)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("engine: finish webhook: %w", storeError(err))
	}
	var doneAt *time.Time
	next := o.NextAt.UTC()
	if o.State != WebhookPending {
		doneAt, next = &at, at
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, last_attempt_at = ?,
		last_status = ?, last_error = ?, next_at = ?, done_at = ?, parked = FALSE, lease_owner = NULL, lease_until = NULL WHERE id = ?`),
		o.State, at, o.Status, o.Error, next, doneAt, o.ID); err != nil {
		return false, fmt.Errorf("engine: finish webhook: %w", storeError(err))
	}
	later := `endpoint_id = ? AND order_id = ? AND state = 'pending' AND seq > ?`
	if o.State == WebhookPending { // the rows behind it wait as long
		_, err = tx.ExecContext(ctx, s.db.Rebind(`UPDATE webhook_deliveries SET next_at = ?, parked = TRUE WHERE `+later+` AND next_at < ?`),
			next, row.EndpointID, row.OrderID, row.Seq, next)
	} else { // the rows parked behind it are due now
		_, err = tx.ExecContext(ctx, s.db.Rebind(`UPDATE webhook_deliveries SET next_at = ?, parked = FALSE WHERE `+later+` AND parked = TRUE`),
			at, row.EndpointID, row.OrderID, row.Seq)
	}
	if err != nil {
		return false, fmt.Errorf("engine: finish webhook: %w", storeError(err))
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("engine: finish webhook: %w", storeError(err))
	}
	return true, nil
}

// WebhookResend says what an admin sends again to an endpoint: one event
// (EventID), or every event of the shop's merchants written at or after
// Since.
type WebhookResend struct {
	EventID string
	Since   time.Time
}

// ResendWebhooks queues events again for a live endpoint of shop, delivered
// or failed or never queued for it (an event from before the endpoint was
// made, of one of the shop's merchants): each becomes pending, due now, with
// a new retry window. A delivered event is sent again (at least once: the
// receiver dedupes by event id); the order of each order's events holds.
// It returns how many deliveries it queued; [ErrNotFound] when the shop
// has no such endpoint.
func (s *Store) ResendWebhooks(ctx context.Context, shop, endpointID string, r WebhookResend, now time.Time) (int, error) {
	if (r.EventID == "") == r.Since.IsZero() {
		return 0, errors.New("engine: resend: one event id or a time since, not both")
	}
	if _, err := s.WebhookEndpoint(ctx, shop, endpointID); err != nil {
		return 0, err
	}
	now = now.UTC()
	which, arg := `ev.id = ?`, any(r.EventID)
	if r.EventID == "" {
		which, arg = `ev.at >= ?`, r.Since.UTC()
	}
	tx, done, err := s.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("engine: resend webhooks: %w", storeError(err))
	}
	defer done()
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, order_id, seq,
		state, attempts, created_at, queued_at, next_at)
		SELECT e.id, ev.id, ev.type, ev.order_id, ev.seq, 'pending', 0, ?, ?, ?
		FROM order_events ev JOIN orders o ON o.id = ev.order_id JOIN outbox ob ON ob.event_id = ev.id
			JOIN webhook_endpoints e ON e.id = ?
		WHERE e.removed_at IS NULL AND `+which+`
			AND EXISTS (SELECT 1 FROM shop_merchants m WHERE m.shop = e.shop AND m.merchant = o.merchant)
		ON CONFLICT (endpoint_id, event_id) DO UPDATE SET state = 'pending', queued_at = excluded.queued_at,
			next_at = excluded.next_at, parked = FALSE, done_at = NULL, lease_owner = NULL, lease_until = NULL`), now, now, now, endpointID, arg)
	if err != nil {
		return 0, fmt.Errorf("engine: resend webhooks: %w", storeError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	// A row in flight as it is resent loses its lease: the send under way
	// then finishes as another's (FinishWebhookDelivery changes nothing) and
	// the row is sent again, rather than the resend being overwritten by
	// that send's outcome and lost.
	//
	// The resent rows behind an earlier pending one of their order wait
	// parked, woken when it ends: a resend of many events leaves only each
	// order's first for the claims to read. (After resendParking they come
	// due anyway, in case nothing wakes them.)
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE webhook_deliveries SET next_at = ?, parked = TRUE
		WHERE endpoint_id = ? AND state = 'pending' AND queued_at = ? AND EXISTS (SELECT 1 FROM webhook_deliveries h
			WHERE h.endpoint_id = webhook_deliveries.endpoint_id AND h.order_id = webhook_deliveries.order_id
				AND h.state = 'pending' AND h.seq < webhook_deliveries.seq)`), now.Add(resendParking), endpointID, now); err != nil {
		return 0, fmt.Errorf("engine: resend webhooks: %w", storeError(err))
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("engine: resend webhooks: %w", storeError(err))
	}
	return int(n), nil
}

// resendParking is how long a resent delivery behind an earlier pending
// one of its order waits at most before it is due anyway (then the
// deliverer's parking takes over).
const resendParking = time.Hour

// WebhookDeliveryFilter selects an endpoint's deliveries, newest first.
type WebhookDeliveryFilter struct {
	EndpointID string
	// State keeps only deliveries in that state; all when empty.
	State WebhookState
	// Before keeps only deliveries of a smaller id: the next page after
	// the last id of the one before.
	Before int64
	// Limit is the most returned (100 when 0).
	Limit int
}

// WebhookDeliveries lists an endpoint's deliveries, newest first.
func (s *Store) WebhookDeliveries(ctx context.Context, f WebhookDeliveryFilter) ([]WebhookDelivery, error) {
	q, args := `SELECT `+deliveryColumns+` FROM webhook_deliveries d WHERE d.endpoint_id = ?`, []any{f.EndpointID}
	if f.State != "" {
		q, args = q+` AND d.state = ?`, append(args, f.State)
	}
	if f.Before > 0 {
		q, args = q+` AND d.id < ?`, append(args, f.Before)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []WebhookDelivery
	if err := s.db.SelectContext(ctx, &out, s.db.Rebind(q+fmt.Sprintf(` ORDER BY d.id DESC LIMIT %d`, f.Limit)), args...); err != nil {
		return nil, fmt.Errorf("engine: webhook deliveries: %w", err)
	}
	for i := range out {
		fixDelivery(&out[i])
	}
	return out, nil
}

// WebhookBacklog is how the deployment's deliveries stand, for metrics.
type WebhookBacklog struct {
	// Pending counts deliveries not yet delivered nor given up; Oldest is
	// when the oldest of them was queued (zero when none).
	Pending int
	Oldest  time.Time
	// Failed counts deliveries given up and not resent.
	Failed int
}

// WebhookBacklog counts the pending and the failed deliveries.
func (s *Store) WebhookBacklog(ctx context.Context) (WebhookBacklog, error) {
	var b WebhookBacklog
	if err := s.db.GetContext(ctx, &b.Pending, `SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'`); err != nil {
		return b, fmt.Errorf("engine: webhook backlog: %w", err)
	}
	if err := s.db.GetContext(ctx, &b.Failed, `SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'failed'`); err != nil {
		return b, fmt.Errorf("engine: webhook backlog: %w", err)
	}
	if b.Pending > 0 {
		err := s.db.GetContext(ctx, &b.Oldest, `SELECT queued_at FROM webhook_deliveries WHERE state = 'pending' ORDER BY queued_at LIMIT 1`)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return b, fmt.Errorf("engine: webhook backlog: %w", err)
		}
		b.Oldest = b.Oldest.UTC()
	}
	return b, nil
}

// pruneDeliveries deletes up to %d deliveries that ended before ?, oldest
// first along the partial index webhook_deliveries_done (migration 00010):
// ordered by id, SQLite scanned every delivery kept, 0.2 s a million rows,
// holding its one writer the while, each hour.
const pruneDeliveries = `DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries
		WHERE state IN ('delivered', 'cancelled') AND done_at < ? ORDER BY done_at LIMIT %d)`

// PruneWebhookDeliveries deletes up to limit deliveries delivered or
// cancelled before before, oldest first, and returns how many. Failed ones
// stay until an admin resends them.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	done, err := s.writerTurn(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	r, err := s.db.ExecContext(ctx, s.db.Rebind(fmt.Sprintf(pruneDeliveries, limit)), before.UTC())
	if err != nil {
		return 0, fmt.Errorf("engine: prune webhooks: %w", storeError(err))
	}
	n, err := r.RowsAffected()
	return int(n), err
}

func fixDelivery(d *WebhookDelivery) {
	d.CreatedAt, d.QueuedAt, d.NextAt = d.CreatedAt.UTC(), d.QueuedAt.UTC(), d.NextAt.UTC()
	for _, p := range []**time.Time{&d.LastAttemptAt, &d.DoneAt} {
		if *p != nil {
			t := (*p).UTC()
			*p = &t
		}
	}
}
