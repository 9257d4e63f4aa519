package control

import (
	"reflect"
	"runtime"
	"strings"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"kok.dev/activities/controlplane"
	"kok.dev/activities/kube"
	pkiacts "kok.dev/activities/pki"
	hosted "kok.dev/activities/provider/kok"
	"kok.dev/activities/temporalops"
)

// recorder is a worker.Registry that records activity registrations.
type recorder struct {
	worker.Registry
	byName map[string]string // wire name -> "<type>.<method>"
	t      *testing.T
}

func (r *recorder) RegisterActivityWithOptions(fn any, o activity.RegisterOptions) {
	if o.Name == "" {
		r.t.Errorf("%s registered without an explicit name", funcName(fn))
	}
	if prev, ok := r.byName[o.Name]; ok {
		r.t.Errorf("activity name %q registered twice: %s and %s", o.Name, prev, funcName(fn))
	}
	r.byName[o.Name] = funcName(fn)
}

func (r *recorder) RegisterActivity(fn any) {
	r.t.Errorf("%T registered under implicit names; use RegisterActivityWithOptions", fn)
}

// funcName is "<package path>.(*Activities).<Method>" for a method value.
func funcName(fn any) string {
	return strings.TrimSuffix(runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name(), "-fm")
}

// TestEveryActivityRegistered fails when an exported method of an activity struct is not
// registered, or is registered under a name other than its wire constant's.
func TestEveryActivityRegistered(t *testing.T) {
	r := &recorder{byName: map[string]string{}, t: t}
	RegisterClusterActivities(r, Deps{})
	RegisterMetaActivities(r, Deps{})

	registered := map[string]string{} // "<type>.<method>" -> wire name
	for name, fn := range r.byName {
		registered[fn] = name
	}
	for _, typ := range []reflect.Type{
		reflect.TypeFor[*kube.Activities](),
		reflect.TypeFor[*controlplane.Activities](),
		reflect.TypeFor[*pkiacts.Activities](),
		reflect.TypeFor[*hosted.Activities](),
		reflect.TypeFor[*temporalops.Activities](),
	} {
		for i := range typ.NumMethod() {
			m := typ.Method(i)
			full := typ.Elem().PkgPath() + ".(*" + typ.Elem().Name() + ")." + m.Name
			if _, ok := registered[full]; !ok {
				t.Errorf("%s is exported but not registered in workers/control", full)
			}
		}
	}
	// Names that workflows in flight schedule (the method names they were registered under
	// implicitly before the constants) must stay registered.
	for _, name := range []string{
		"ReadMachine", "ReportMachineStatus", "RecordMachineEvent", "ReleaseMachine", "SetNodeSchedulable",
		"ReadCluster", "RenderMaster", "CheckControlPlane", "InstallAddons", "ReportClusterStatus",
		"RecordClusterEvent", "ReleaseCluster", "EnsureClusterPKI", "DeleteClusterPKI",
		"EnsureControlPlane", "DeleteControlPlane", "ControlPlaneStatus", "TerminateClusterWorkflows",
	} {
		if _, ok := r.byName[name]; !ok {
			t.Errorf("activity name %q is no longer registered: running workflows schedule it", name)
		}
	}
}
