package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionCommand prints the module version and the VCS revision the binary
// was built from, as Go's build info records them.
func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print wxflow's version and the revision it was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), version())
			return nil
		},
	}
}

// version is "wxflow VERSION (REVISION[, modified], TIME, GOVERSION)" from the build info.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "wxflow (no build info)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	rev, at, modified := "unknown revision", "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified {
		rev += ", modified"
	}
	if at != "" {
		rev += ", " + at
	}
	return fmt.Sprintf("wxflow %s (%s, %s)", v, rev, bi.GoVersion)
}
