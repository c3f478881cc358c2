// Command wxflow is the one binary of wxflow: the engine, the HTTP API, the
// workers, the WeChat simulator and the admin tools, one subcommand each, and
// `wxflow dev`, which runs all of them in one process.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "wxflow:", err)
		stop()
		os.Exit(1)
	}
}

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "wxflow",
		Short:         "An event-driven engine for WeChat Pay order workflows",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(devCommand(), natsCommand(), simCommand(), migrateCommand(), engineCommand(), apiCommand(), workerCommand(), demoCommand(), adminCommand(), verifyCommand(), benchCommand())
	return root
}
