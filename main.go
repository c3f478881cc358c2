// Command wxflow is the one binary of wxflow: the engine, the HTTP API, the
// workers, the WeChat simulator and the admin tools, one subcommand each, and
// `wxflow dev`, which runs all of them in one process. The commands live in
// internal/cli; the processes they start are built by internal/stack.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wxflow/wxflow/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
