// Package cli is wxflow's command line: one file per subcommand, each
// turning its flags and WXFLOW_* variables into [stack.Settings] and handing
// them to internal/stack (processes), internal/demo, internal/bench,
// internal/verify or the engine's store (admin). Nothing here wires a
// process by itself.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/internal/stack"
)

// Exit statuses of [Execute].
const (
	ExitOK    = 0
	ExitError = 1 // the command ran and failed (a breach, a refused command, a lost server)
	ExitUsage = 2 // the command line or a setting is wrong; nothing was done
)

// usageError marks an error in what the user typed or set.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Execute runs wxflow with args (without the program name) until ctx ends,
// writing to stdout and stderr, and returns the process's exit status.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := Root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "wxflow:", err)
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, stack.ErrInvalid) {
		return ExitUsage
	}
	return ExitError
}

// Root is the wxflow command with every subcommand.
func Root() *cobra.Command {
	root := &cobra.Command{
		Use:           "wxflow",
		Short:         "An event-driven engine for WeChat Pay order workflows",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Unknown subcommands are errors, not a help page with status 0.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(devCommand(), natsCommand(), simCommand(), migrateCommand(), engineCommand(), apiCommand(),
		workerCommand(), demoCommand(), adminCommand(), shopCommand(), verifyCommand(), benchCommand(), versionCommand())
	root.AddCommand(booksCommand())
	root.AddCommand(merchantCommand())
	argsAreUsage(root)
	return root
}

// argsAreUsage makes every command's argument check (an unknown
// subcommand, a missing order id) a usage error, as flag errors are.
func argsAreUsage(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		argsAreUsage(sub)
	}
}

// stoppedByUser is nil for ctx's error when the user stopped the command: not a failure.
func stoppedByUser(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
