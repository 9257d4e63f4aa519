package host

import (
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"kok.dev/activities/host"
)

// recorder is a worker.Registry that records activity registrations; anything else panics.
type recorder struct {
	worker.Registry
	names map[string]string // wire name -> the Go function's name
}

func (r *recorder) RegisterActivityWithOptions(fn any, o activity.RegisterOptions) {
	r.names[o.Name] = runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
}

// TestEveryActivityIsRegisteredUnderItsWireName fails when a new exported method of
// host.Activities (an activity) has no wire name in Register, or is registered under the name
// of another method.
func TestEveryActivityIsRegisteredUnderItsWireName(t *testing.T) {
	r := &recorder{names: map[string]string{}}
	Register(r, &host.Activities{})

	typ := reflect.TypeFor[*host.Activities]()
	var methods []string
	for i := range typ.NumMethod() {
		methods = append(methods, typ.Method(i).Name)
	}
	registered := make([]string, 0, len(r.names))
	for name, fn := range r.names {
		registered = append(registered, name)
		// A method value's function is named "<pkg>.(*Activities).<Method>-fm".
		require.True(t, strings.HasSuffix(fn, ".(*Activities)."+name+"-fm"),
			"wire name %s is served by %s: the names equal the Go method names", name, fn)
	}
	sort.Strings(methods)
	sort.Strings(registered)
	require.Equal(t, methods, registered,
		"every exported method of host.Activities is an activity: give it a hostapi.Activity* name in Register")
}
