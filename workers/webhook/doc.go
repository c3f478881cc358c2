// Package webhook delivers every event of a shop's merchants to the shop's
// HTTP endpoints: the way a shop that does not listen on NATS hears that an
// order was paid, refunded or closed, without polling.
//
// The engine queues one delivery per endpoint and event in the transaction
// that writes the event (engine.Store's webhook_deliveries), so nothing
// committed is missed and nothing is queued twice. A [Deliverer] claims due
// deliveries from the store under a lease (several processes never send one
// at once), POSTs the event's JSON exactly as published on NATS, signed with
// the endpoint's secret ([Sign]), and records the outcome: a 2xx answer
// delivers it; anything else (another status, a redirect, a timeout, a
// refused or failed connection) is retried with exponential back-off and
// jitter until [Config].GiveUpAfter (3 days), then the delivery is marked
// failed for an admin to resend. One order's events reach an endpoint in
// seq order: event n+1 waits until n was delivered or given up.
//
// Endpoints are checked before they are stored ([CheckURL]) and every
// connection is checked again when it is made: unless [Config].AllowPrivate,
// no delivery reaches a loopback, private, link-local or otherwise
// non-public address, whatever a name resolves to at the time. Redirects are
// never followed and at most [Config].MaxResponseBytes of an answer is read.
//
// The package reads and writes the store only; it uses no NATS.
package webhook
