// Package e2e holds wxflow's tests of whole deployments, built by
// internal/stack exactly as `wxflow dev` builds them: the end-to-end run of
// every scenario, chaos at WeChat, a 3-node NATS cluster losing a node,
// replays and the reconciler, the admin page in a real browser, and the CLI
// (`wxflow admin`, `wxflow verify`) over the data folder they leave. It has
// no code of its own: only tests.
package e2e
