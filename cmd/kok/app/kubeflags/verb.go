package kubeflags

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// NewResourceCommand builds one resource's subcommand of a verb (`machines` of `kok get`).
// flags are the verb's --kubeconfig and --context, set by the time the subcommand runs.
type NewResourceCommand func(flags *Flags) *cobra.Command

// NewVerbCommand completes verb, whose Use and help the caller wrote, into a command that takes
// a resource type: it adds --kubeconfig and --context for every resource and one subcommand per
// resource. Naming no resource type, or one it does not know, is an error that lists the known ones.
func NewVerbCommand(verb *cobra.Command, resources ...NewResourceCommand) *cobra.Command {
	flags := &Flags{}
	flags.AddFlags(verb.PersistentFlags())
	for _, r := range resources {
		verb.AddCommand(r(flags))
	}
	verb.Args = cobra.ArbitraryArgs
	verb.RunE = func(cmd *cobra.Command, args []string) error {
		var known []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				known = append(known, c.Name())
			}
		}
		if len(args) == 0 {
			return fmt.Errorf("name a resource type: kok %s TYPE, where TYPE is one of %s", cmd.Name(), strings.Join(known, ", "))
		}
		return fmt.Errorf("unknown resource type %q for kok %s; use one of %s", args[0], cmd.Name(), strings.Join(known, ", "))
	}
	return verb
}
