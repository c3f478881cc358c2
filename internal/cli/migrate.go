package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/stack"
)

// migrateCommand applies the migrations and exits.
func migrateCommand() *cobra.Command {
	var s stack.Settings
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the SQL migrations to the database",
		Args:  cobra.NoArgs,
	}
	flags := settingsFlags(cmd, &s, gData, gLog, gDB)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		store, err := engine.Open(cmd.Context(), s.DBURL)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "migrations applied")
		return store.Close()
	}
	return cmd
}
