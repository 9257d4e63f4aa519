package app

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestSizingDefaultsAreValidAndBadValuesSayWhich(t *testing.T) {
	var o Options
	fs := pflag.NewFlagSet("kok-manager", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := o.Sizing.validate(); err != nil {
		t.Fatalf("the default sizing is refused: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--workflow-cache-size=0"}, "--workflow-cache-size is 0"},
		{[]string{"--workflow-task-pollers=1"}, "--workflow-task-pollers is 1"},
		{[]string{"--max-concurrent-workflow-tasks=1"}, "--max-concurrent-workflow-tasks is 1"},
		{[]string{"--max-concurrent-reconciles=-1"}, "--max-concurrent-reconciles is -1"},
	} {
		var o Options
		fs := pflag.NewFlagSet("kok-manager", pflag.ContinueOnError)
		o.AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if err := o.Sizing.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: validate() = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
