package clusters

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/render"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func agoPtr(d time.Duration) *metav1.Time { t := ago(d); return &t }

// upgrading is a three-master Cluster whose canary master is halfway to v1.38.0.
func upgrading() *kokv1.Cluster {
	return &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{
			Name: "prod", UID: "uid-prod", Generation: 5, CreationTimestamp: ago(48 * time.Hour),
			Labels: map[string]string{"env": "prod"},
		},
		Spec: kokv1.ClusterSpec{
			PackageVersion: "v1.38.0",
			Provider:       kokv1.ProviderProcess,
			Masters:        kokv1.ClusterMasters{Count: 3, Hosts: []string{"m1", "m2", "m3"}},
			Network: kokv1.ClusterNetwork{ServiceCIDR: "10.96.0.0/12", PodCIDR: "10.244.0.0/16", APIServerPort: 6443,
				ControlPlaneEndpoint: "api.prod.example:443"},
			Components: []kokv1.ClusterComponent{{Name: kokv1.ComponentKubeAPIServer, Args: map[string]string{"v": "2", "feature-gates": "A=true"}}},
			Upgrade:    kokv1.ClusterUpgrade{AutoRollback: ptr.To(true), HealthTimeout: &metav1.Duration{Duration: 5 * time.Minute}},
			Health: kokv1.ClusterHealth{CheckInterval: &metav1.Duration{Duration: 30 * time.Second}, MaxAutoRecoveries: ptr.To[int32](3),
				Window: &metav1.Duration{Duration: time.Hour}},
			DeletionPolicy: kokv1.DeletionPolicyDelete,
		},
		Status: kokv1.ClusterStatus{
			Phase:                  kokv1.ClusterUpgrading,
			CurrentPackageVersion:  "v1.37.2",
			PreviousPackageVersion: "v1.36.3",
			TargetPackageVersion:   "v1.38.0",
			Endpoint:               "https://api.prod.example:443",
			KubeconfigSecretRef:    &kokv1.SecretKeyRef{Namespace: "kok-cluster-prod", Name: "prod-admin-kubeconfig", Key: "kubeconfig"},
			Masters: []kokv1.MasterStatus{
				{Host: "m1", Phase: kokv1.MasterUpgrading, Components: []kokv1.MasterComponentStatus{
					{Name: kokv1.ComponentEtcd, Version: "v3.7.0", Ready: true},
					{Name: kokv1.ComponentKubeAPIServer, Version: "v1.38.0", Message: "readyz:\tetcd not\nready"},
				}},
				{Host: "m2", Phase: kokv1.MasterRunning, Ready: true, Components: []kokv1.MasterComponentStatus{
					{Name: kokv1.ComponentEtcd, Version: "v3.7.0", Ready: true},
					{Name: kokv1.ComponentKubeAPIServer, Version: "v1.37.2", Ready: true},
				}},
				{Host: "m3", Phase: kokv1.MasterPending},
			},
			ReadyMasters:         1,
			RecentAutoRecoveries: 1,
			Operation: &kokv1.ClusterOperation{
				Type: kokv1.ClusterOperationUpgrade, Step: "canary master m1", Message: "kube-apiserver v1.37.2 -> v1.38.0",
				StartedAt: agoPtr(3 * time.Minute), CanaryHost: "m1",
			},
			Workflow: &kokv1.WorkflowRef{ID: "Cluster/prod", RunID: "run-3",
				URL: "http://127.0.0.1:8233/namespaces/kok-test/workflows/Cluster%2Fprod"},
			Conditions: []metav1.Condition{
				{Type: kokv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Running", Message: "serving while v1.37.2 moves to v1.38.0", LastTransitionTime: ago(time.Hour)},
				{Type: kokv1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: "Upgrade", Message: "canary master m1: kube-apiserver v1.37.2 -> v1.38.0", LastTransitionTime: ago(3 * time.Minute)},
			},
			ObservedGeneration: 5,
		},
	}
}

func TestDescribeUpgradingCluster(t *testing.T) {
	events := []corev1.Event{{
		ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: "default"},
		Type:       corev1.EventTypeNormal, Reason: "MasterUpgraded", Message: "m0 runs v1.38.0",
		Source:         corev1.EventSource{Component: "kok-cluster-workflow"},
		FirstTimestamp: ago(time.Minute), LastTimestamp: ago(time.Minute), Count: 1,
	}}
	var out bytes.Buffer
	require.NoError(t, printDescription(&out, upgrading(), events, nil, now))
	require.Equal(t, `Name:             prod
Labels:           env=prod
Created:          2026-11-24T12:00:00Z (2d ago)
Provider:         process
Phase:            Upgrading
Paused:           false
Deletion Policy:  Delete
Generation:       5 (status is up to date)
Endpoint:         https://api.prod.example:443
Kubeconfig:       Secret kok-cluster-prod/prod-admin-kubeconfig, key kubeconfig (kok kubeconfig prod prints it)
Masters:          3 on m1, m2, m3, 1 ready
Network:          services 10.96.0.0/12, pods 10.244.0.0/16, API server port 6443, control-plane endpoint api.prod.example:443
Upgrade:          each master healthy within 5m0s, else roll back
Health:           checked every 30s, at most 3 automatic recoveries per 1h0m0s (1 so far)
Package Versions:
  Spec:      v1.38.0
  Current:   v1.37.2
  Previous:  v1.36.3
  Target:    v1.38.0
Component Overrides:
  NAME            ARGS
  kube-apiserver  --feature-gates=A=true --v=2
Operation:
  Type:     Upgrade
  Step:     canary master m1
  Message:  kube-apiserver v1.37.2 -> v1.38.0
  Canary:   m1
  Started:  2026-11-26T11:57:00Z (3m ago)
Master Status:
  HOST  PHASE      READY  COMPONENT       VERSION  READY  MESSAGE
  m1    Upgrading  false  etcd            v3.7.0   true
                          kube-apiserver  v1.38.0  false  readyz: etcd not ready
  m2    Running    true   etcd            v3.7.0   true
                          kube-apiserver  v1.37.2  true
  m3    Pending    false  <none>
Conditions:
  TYPE         STATUS  REASON   AGE  MESSAGE
  Ready        True    Running  60m  serving while v1.37.2 moves to v1.38.0
  Progressing  True    Upgrade  3m   canary master m1: kube-apiserver v1.37.2 -> v1.38.0
Events:
  TYPE    REASON          AGE  FROM                  MESSAGE
  Normal  MasterUpgraded  60s  kok-cluster-workflow  m0 runs v1.38.0
Workflow:
  ID:       Cluster/prod
  Run ID:   run-3
  Web UI:   http://127.0.0.1:8233/namespaces/kok-test/workflows/Cluster%2Fprod
  History:  temporal workflow show --workflow-id Cluster/prod --namespace kok-test
`, out.String())
}

// A Cluster just created with the kok provider: no status, no workflow yet, API defaults not
// applied (as a client may hold it).
func TestDescribeNewCluster(t *testing.T) {
	c := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "dev", Generation: 1, CreationTimestamp: ago(3 * time.Second)},
		Spec: kokv1.ClusterSpec{PackageVersion: "v1.37.2", Provider: kokv1.ProviderKok, Paused: true,
			Upgrade: kokv1.ClusterUpgrade{AutoRollback: ptr.To(false)}, Health: kokv1.ClusterHealth{MaxAutoRecoveries: ptr.To[int32](0)}},
	}
	var out bytes.Buffer
	require.NoError(t, printDescription(&out, c, nil, errors.New("events is forbidden"), now))
	require.Equal(t, `Name:             dev
Labels:           <none>
Created:          2026-11-26T11:59:57Z (3s ago)
Provider:         kok
Phase:            <none>
Paused:           true
Deletion Policy:  Delete
Generation:       1 (no status reported yet)
Endpoint:         <none>
Kubeconfig:       <none> yet
Masters:          1 as pods in the meta cluster, 0 ready
Network:          services 10.96.0.0/12, pods 10.244.0.0/16, API server port 6443, control-plane endpoint <the masters' addresses>
Upgrade:          each master healthy within 5m0s, else wait for a human
Health:           checked every 30s, automatic recovery off
Package Versions:
  Spec:      v1.37.2
  Current:   <none>
  Previous:  <none>
  Target:    <none>
Component Overrides:
  <none>
Operation:
  <none>
Master Status:
  <none>
Conditions:
  <none>
Events:
  cannot show them: events is forbidden
Workflow:
  <none>: no workflow has picked this Cluster up yet; is kok-manager running?
`, out.String())
}

func TestGetTables(t *testing.T) {
	prod := upgrading()
	dev := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "dev", CreationTimestamp: ago(90 * time.Second)},
		Spec:       kokv1.ClusterSpec{PackageVersion: "v1.37.2", Provider: kokv1.ProviderKok},
	}
	stage := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "stage", CreationTimestamp: ago(3 * 24 * time.Hour)},
		Spec:       kokv1.ClusterSpec{PackageVersion: "v1.37.2", Masters: kokv1.ClusterMasters{Count: 1, Hosts: []string{"s1"}}},
		Status: kokv1.ClusterStatus{Phase: kokv1.ClusterRunning, CurrentPackageVersion: "v1.37.2", ReadyMasters: 1,
			Endpoint: "https://10.0.0.7:6443", Workflow: &kokv1.WorkflowRef{ID: "Cluster/stage"}},
	}
	cs := []*kokv1.Cluster{dev, prod, stage}

	var out, errOut bytes.Buffer
	require.NoError(t, printClusters(&out, &errOut, cs, "", false, now))
	require.Equal(t, `NAME    PHASE       VERSION   TARGET    MASTERS   READY   ENDPOINT                       PROVIDER   AGE
dev     <none>      <none>    <none>    1         0       <none>                         kok        90s
prod    Upgrading   v1.37.2   v1.38.0   3         1       https://api.prod.example:443   process    2d
stage   Running     v1.37.2   <none>    1         1       https://10.0.0.7:6443          process    3d
`, out.String())
	require.Empty(t, errOut.String())

	out.Reset()
	require.NoError(t, printClusters(&out, &errOut, cs, render.OutputWide, false, now))
	require.Equal(t, `NAME    PHASE       VERSION   TARGET    MASTERS   READY   ENDPOINT                       PROVIDER   AGE   OPERATION                   WORKFLOW
dev     <none>      <none>    <none>    1         0       <none>                         kok        90s   <none>                      <none>
prod    Upgrading   v1.37.2   v1.38.0   3         1       https://api.prod.example:443   process    2d    Upgrade: canary master m1   http://127.0.0.1:8233/namespaces/kok-test/workflows/Cluster%2Fprod
stage   Running     v1.37.2   <none>    1         1       https://10.0.0.7:6443          process    3d    <none>                      Cluster/stage
`, out.String())

	out.Reset()
	require.NoError(t, printClusters(&out, &errOut, cs, render.OutputName, false, now))
	require.Equal(t, "cluster.kok.dev/dev\ncluster.kok.dev/prod\ncluster.kok.dev/stage\n", out.String())

	out.Reset()
	require.NoError(t, printClusters(&out, &errOut, nil, "", false, now))
	require.Empty(t, out.String())
	require.Equal(t, "No resources found.\n", errOut.String())
}

func TestGetObjects(t *testing.T) {
	c := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "dev", CreationTimestamp: ago(time.Hour),
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec:   kokv1.ClusterSpec{PackageVersion: "v1.37.2", Provider: kokv1.ProviderKok},
		Status: kokv1.ClusterStatus{Phase: kokv1.ClusterRunning},
	}
	var out bytes.Buffer
	require.NoError(t, printClusters(&out, nil, []*kokv1.Cluster{c}, render.OutputYAML, true, now))
	require.Equal(t, `apiVersion: kok.dev/v1alpha1
kind: Cluster
metadata:
  creationTimestamp: "2026-11-26T11:00:00Z"
  name: dev
spec:
  health: {}
  masters: {}
  network: {}
  packageVersion: v1.37.2
  provider: kok
  upgrade: {}
status:
  phase: Running
`, out.String())
	require.Len(t, c.ManagedFields, 1, "the caller's object is left alone")
	require.Empty(t, c.Kind)

	out.Reset()
	require.NoError(t, printClusters(&out, nil, []*kokv1.Cluster{c, c}, render.OutputJSON, false, now))
	require.Contains(t, out.String(), "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"List\",\n    \"items\": [\n        {\n            \"kind\": \"Cluster\",\n")
}
