// Package stack builds wxflow's processes from [Settings]: the embedded NATS
// server, the WeChat simulator, the engine, the API and each worker kind, one
// builder per kind. `wxflow dev`, the bench, the demo, the end-to-end tests
// and every subcommand build their processes here and nowhere else, so a
// process started by the Procfile and the same part inside `wxflow dev` are
// wired by the same lines.
//
// Builders return parts that have a Run(ctx) method and own nothing they did
// not make: the caller closes the store and drains NATS after every Run has
// returned.
package stack
