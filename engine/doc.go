// Package engine owns wxflow's orders: the lifecycle state machine, the
// store, applying a command as one transaction (state + event + outbox), the
// outbox relay to NATS JetStream, and the streams wxflow declares.
//
// It knows nothing of HTTP or WeChat: the api package and the workers speak
// to it only through commands (wxflow.cmd.<verb>.<origin>) and read its events
// (wxflow.evt.<merchant>.<type>.<order_id>).
//
// The money rules it enforces:
//
//   - One transaction per applied command: the state change, the event row and
//     the outbox row commit together or not at all. Events reach NATS only
//     from the outbox.
//   - A command that does not fit the current state is a no-op with a reason,
//     recorded in the history, never an error loop and never a second effect.
//   - An order is paid only by a verified notification or an order query whose
//     amount equals the order's; refunds never exceed what was paid.
package engine
