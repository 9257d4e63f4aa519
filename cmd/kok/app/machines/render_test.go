package machines

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/render"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func agoPtr(d time.Duration) *metav1.Time { t := ago(d); return &t }

// upgrading is a Machine in the middle of an upgrade, held unschedulable by an isolation and a
// gate, with a package the spec dropped still on the host and one the spec added not there yet.
func upgrading() *kokv1.Machine {
	return &kokv1.Machine{
		ObjectMeta: metav1.ObjectMeta{
			Name: "w1", UID: types.UID("uid-w1"), Generation: 4, CreationTimestamp: ago(2 * time.Hour),
			Labels: map[string]string{"pool": "gpu", "zone": "a"},
		},
		Spec: kokv1.MachineSpec{
			Packages: []kokv1.PackageRef{
				{Name: "kubelet", Version: "v1.37.2"}, {Name: "containerd", Version: "1.7.2"}, {Name: "log-collector", Version: "2.1.0"},
			},
			ReadinessGates: []kokv1.ReadinessGate{
				{ConditionType: "example.com/NetworkReady", Mode: kokv1.GateContinuous},
				{ConditionType: "StorageReady", Mode: kokv1.GateBootstrap},
			},
			Isolations: []kokv1.Isolation{
				{Requester: "noderepair/disk-failure-w1", Reason: "disk /dev/sdb\nfailing", Since: agoPtr(5 * time.Minute)},
			},
			DriftCheckInterval: &metav1.Duration{Duration: time.Minute},
			DeletionPolicy:     kokv1.DeletionPolicyOrphan,
		},
		Status: kokv1.MachineStatus{
			Phase:    kokv1.MachineProvisioning,
			Versions: "containerd=1.7.2",
			Components: []kokv1.MachineComponentStatus{
				{Name: "containerd", Version: "1.7.2", Phase: kokv1.ComponentRunning, LastTransitionTime: agoPtr(2 * time.Hour)},
				{Name: "kubelet", Version: "v1.37.2", Phase: kokv1.ComponentUpgrading, Message: "installing v1.37.2 (was v1.37.1)", LastTransitionTime: agoPtr(30 * time.Second)},
				{Name: "node-problem-detector", Version: "0.8.19", Phase: kokv1.ComponentRemoving, Message: "stopping the service", LastTransitionTime: agoPtr(10 * time.Second)},
			},
			Host:               &kokv1.HostFacts{OS: "Debian GNU/Linux 13", Kernel: "6.12.0-1-amd64", Arch: "amd64"},
			LastDriftCheckTime: agoPtr(40 * time.Second),
			Workflow: &kokv1.WorkflowRef{
				ID: "machine/local/w1", RunID: "run-7",
				URL: "http://127.0.0.1:8233/namespaces/kok-test/workflows/machine%2Flocal%2Fw1",
			},
			Conditions: []metav1.Condition{
				{Type: kokv1.ConditionReady, Status: metav1.ConditionFalse, Reason: kokv1.ReasonInProgress, Message: "upgrading kubelet", LastTransitionTime: ago(30 * time.Second)},
				{Type: kokv1.MachineConditionSchedulable, Status: metav1.ConditionFalse, Reason: kokv1.ReasonIsolated, Message: "isolated by noderepair/disk-failure-w1; readiness gate example.com/NetworkReady is False", LastTransitionTime: ago(5 * time.Minute)},
				{Type: "example.com/NetworkReady", Status: metav1.ConditionFalse, Reason: "NotConfigured", Message: "no CNI config\tyet", LastTransitionTime: ago(3 * time.Minute)},
			},
			ObservedGeneration: 3,
		},
	}
}

func event(name, reason string, at time.Duration, count int32) corev1.Event {
	return corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Type:       corev1.EventTypeNormal, Reason: reason, Message: reason + " on w1",
		Source:         corev1.EventSource{Component: "kok-machine-workflow"},
		FirstTimestamp: ago(at + time.Duration(count-1)*time.Minute), LastTimestamp: ago(at), Count: count,
	}
}

func TestDescribeUpgradingMachine(t *testing.T) {
	var events []corev1.Event
	// Twelve events listed newest first, the newest a repeated drift repair: only the latest ten
	// are shown, oldest first.
	for i := range 12 {
		events = append(events, event(fmt.Sprintf("e%02d", i), fmt.Sprintf("Step%02d", 12-i), time.Duration(i+1)*time.Minute, 1))
	}
	events[0].Type, events[0].Reason, events[0].Message = corev1.EventTypeWarning, kokv1.ReasonDriftCorrected, "restarted kubelet:\nit had stopped"
	events[0].Count, events[0].FirstTimestamp = 3, ago(20*time.Minute)

	var out bytes.Buffer
	require.NoError(t, printDescription(&out, upgrading(), events, nil, now))
	require.Equal(t, `Name:             w1
Labels:           pool=gpu,zone=a
Created:          2026-11-26T10:00:00Z (120m ago)
Host:             w1 (Debian GNU/Linux 13, kernel 6.12.0-1-amd64, amd64)
Phase:            Provisioning
Schedulable:      false: isolated by noderepair/disk-failure-w1; readiness gate example.com/NetworkReady is False
Paused:           false
Deletion Policy:  Orphan
Generation:       4 (status describes generation 3: kok has not caught up with the latest spec yet)
Drift Check:      every 1m0s, last 40s ago
Packages:
  NAME                   SPEC     INSTALLED  PHASE      AGE   MESSAGE
  containerd             1.7.2    1.7.2      Running    120m
  kubelet                v1.37.2  v1.37.2    Upgrading  30s   installing v1.37.2 (was v1.37.1)
  log-collector          2.1.0    <none>     <none>
  node-problem-detector  <none>   0.8.19     Removing   10s   stopping the service
Readiness Gates:
  CONDITION                 MODE        STATUS        MESSAGE
  example.com/NetworkReady  Continuous  False         no CNI config yet
  StorageReady              Bootstrap   not reported
Isolations:
  REQUESTER                   AGE  REASON
  noderepair/disk-failure-w1  5m   disk /dev/sdb failing
Conditions:
  TYPE                      STATUS  REASON         AGE  MESSAGE
  Ready                     False   InProgress     30s  upgrading kubelet
  Schedulable               False   Isolated       5m   isolated by noderepair/disk-failure-w1; readiness gate example.com/NetworkReady is False
  example.com/NetworkReady  False   NotConfigured  3m   no CNI config yet
Events:
  (the latest 10 of 12)
  TYPE     REASON          AGE                FROM                  MESSAGE
  Normal   Step03          10m                kok-machine-workflow  Step03 on w1
  Normal   Step04          9m                 kok-machine-workflow  Step04 on w1
  Normal   Step05          8m                 kok-machine-workflow  Step05 on w1
  Normal   Step06          7m                 kok-machine-workflow  Step06 on w1
  Normal   Step07          6m                 kok-machine-workflow  Step07 on w1
  Normal   Step08          5m                 kok-machine-workflow  Step08 on w1
  Normal   Step09          4m                 kok-machine-workflow  Step09 on w1
  Normal   Step10          3m                 kok-machine-workflow  Step10 on w1
  Normal   Step11          2m                 kok-machine-workflow  Step11 on w1
  Warning  DriftCorrected  60s (x3 over 20m)  kok-machine-workflow  restarted kubelet: it had stopped
Workflow:
  ID:       machine/local/w1
  Run ID:   run-7
  Web UI:   http://127.0.0.1:8233/namespaces/kok-test/workflows/machine%2Flocal%2Fw1
  History:  temporal workflow show --workflow-id machine/local/w1 --namespace kok-test
`, out.String())
}

// A Machine just created: no status, no workflow yet, nothing to list.
func TestDescribeNewMachine(t *testing.T) {
	m := &kokv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: "w2", Generation: 1, CreationTimestamp: ago(3 * time.Second)},
		Spec:       kokv1.MachineSpec{Host: "host-2", Paused: true},
	}
	var out bytes.Buffer
	require.NoError(t, printDescription(&out, m, nil, errors.New("events is forbidden"), now))
	require.Equal(t, `Name:             w2
Labels:           <none>
Created:          2026-11-26T11:59:57Z (3s ago)
Host:             host-2
Phase:            <none>
Schedulable:      false
Paused:           true
Deletion Policy:  Delete
Generation:       1 (no status reported yet)
Drift Check:      every 5m0s, last never yet
Packages:
  <none>
Readiness Gates:
  <none>
Isolations:
  <none>
Conditions:
  <none>
Events:
  cannot show them: events is forbidden
Workflow:
  <none>: no workflow has picked this Machine up yet; is kok-manager running?
`, out.String())
}

func TestDescribeSchedulableDeletingMachine(t *testing.T) {
	m := upgrading()
	m.Finalizers = []string{kokv1.MachineFinalizer}
	m.DeletionTimestamp = agoPtr(time.Minute)
	m.Status.Schedulable = true
	m.Status.ObservedGeneration = 4
	m.Status.Workflow = &kokv1.WorkflowRef{ID: "machine/local/w1"}
	var out bytes.Buffer
	require.NoError(t, printDescription(&out, m, nil, nil, now))
	for _, want := range []string{
		"\nDeleting:         since 60s ago, waiting for finalizers kok.dev/machine\n",
		"\nSchedulable:      true\n",
		"\nGeneration:       4 (status is up to date)\n",
		"\nEvents:\n  <none>\n",
		"\n  Web UI:   <none> (kok-manager runs without a Web UI address)\n",
		"\n  History:  temporal workflow show --workflow-id machine/local/w1 --namespace kok\n",
	} {
		require.Contains(t, out.String(), want)
	}
	require.NotContains(t, out.String(), "Run ID")
}

func TestGetTables(t *testing.T) {
	w1 := upgrading()
	w2 := kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "w2", CreationTimestamp: ago(3 * 24 * time.Hour)}, Spec: kokv1.MachineSpec{Host: "host-2"}}
	w3 := kokv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: "w3", CreationTimestamp: ago(90 * time.Second)},
		Status: kokv1.MachineStatus{
			Phase: kokv1.MachineReady, Schedulable: true, Versions: "containerd=1.7.2,kubelet=v1.37.2",
			Host:     &kokv1.HostFacts{Kernel: "6.1.0"},
			Workflow: &kokv1.WorkflowRef{ID: "machine/local/w3"},
		},
	}
	ms := []kokv1.Machine{*w1, w2, w3}

	var out, errOut bytes.Buffer
	require.NoError(t, printMachines(&out, &errOut, ms, "", false, now))
	require.Equal(t, `NAME   PHASE          VERSIONS                           SCHEDULABLE   AGE
w1     Provisioning   containerd=1.7.2                   false         120m
w2     <none>         <none>                             false         3d
w3     Ready          containerd=1.7.2,kubelet=v1.37.2   true          90s
`, out.String())
	require.Empty(t, errOut.String())

	out.Reset()
	require.NoError(t, printMachines(&out, &errOut, ms, render.OutputWide, false, now))
	require.Equal(t, `NAME   PHASE          VERSIONS                           SCHEDULABLE   AGE    HOST     OS/KERNEL                            WORKFLOW
w1     Provisioning   containerd=1.7.2                   false         120m   w1       Debian GNU/Linux 13/6.12.0-1-amd64   http://127.0.0.1:8233/namespaces/kok-test/workflows/machine%2Flocal%2Fw1
w2     <none>         <none>                             false         3d     host-2   <none>                               <none>
w3     Ready          containerd=1.7.2,kubelet=v1.37.2   true          90s    w3       <unknown>/6.1.0                      machine/local/w3
`, out.String())

	out.Reset()
	require.NoError(t, printMachines(&out, &errOut, ms, render.OutputName, false, now))
	require.Equal(t, "machine.kok.dev/w1\nmachine.kok.dev/w2\nmachine.kok.dev/w3\n", out.String())

	out.Reset()
	require.NoError(t, printMachines(&out, &errOut, nil, "", false, now))
	require.Empty(t, out.String())
	require.Equal(t, "No resources found.\n", errOut.String())
}

func TestGetObjects(t *testing.T) {
	m := kokv1.Machine{
		ObjectMeta: metav1.ObjectMeta{
			Name: "w1", CreationTimestamp: ago(time.Hour),
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Spec:   kokv1.MachineSpec{Packages: []kokv1.PackageRef{{Name: "kubelet", Version: "v1.37.2"}}},
		Status: kokv1.MachineStatus{Phase: kokv1.MachineReady},
	}
	var out bytes.Buffer
	require.NoError(t, printMachines(&out, nil, []kokv1.Machine{m}, render.OutputYAML, true, now))
	require.Equal(t, `apiVersion: kok.dev/v1alpha1
kind: Machine
metadata:
  creationTimestamp: "2026-11-26T11:00:00Z"
  name: w1
spec:
  packages:
  - name: kubelet
    version: v1.37.2
status:
  phase: Ready
  schedulable: false
`, out.String())

	out.Reset()
	require.NoError(t, printMachines(&out, nil, []kokv1.Machine{m}, render.OutputJSON, false, now))
	require.Equal(t, `{
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "kind": "Machine",
            "apiVersion": "kok.dev/v1alpha1",
            "metadata": {
                "name": "w1",
                "creationTimestamp": "2026-11-26T11:00:00Z"
            },
            "spec": {
                "packages": [
                    {
                        "name": "kubelet",
                        "version": "v1.37.2"
                    }
                ]
            },
            "status": {
                "phase": "Ready",
                "schedulable": false
            }
        }
    ]
}
`, out.String())

	out.Reset()
	require.NoError(t, printMachines(&out, nil, nil, render.OutputYAML, false, now))
	require.Equal(t, "apiVersion: v1\nitems: []\nkind: List\n", out.String())
}
