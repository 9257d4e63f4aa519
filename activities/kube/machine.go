package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"kok.dev/contract/hostapi"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	kokv1 "kok.dev/api/v1alpha1"
)

// MachineFinalizer holds a Machine until its workflow has removed its packages (or orphaned them).
const MachineFinalizer = kokv1.MachineFinalizer

// DefaultDriftInterval is spec.driftCheckInterval's default (the CRD writes it too; this covers
// objects stored before it had one).
const DefaultDriftInterval = 15 * time.Minute

// ReadMachineParams names the Machine to read.
type ReadMachineParams struct {
	Name string
}

// GateSpec is one readiness gate of the spec.
type GateSpec struct {
	Type string
	Mode string
}

// MachineDesired is a Machine's spec with every reference resolved: what the workflow drives
// the host to. Found is false once the object is gone.
type MachineDesired struct {
	Found      bool
	Generation int64
	// UID identifies this object: a Machine deleted and created again under the same name has
	// another UID, and the workflow treats it as a new Machine.
	UID      string
	Host     string
	Deleting bool
	// Orphan: deletionPolicy Orphan, or the kok.dev/orphan annotation set to "true".
	Orphan bool
	// Retry is the kok.dev/retry annotation: a new value asks the workflow to retry the packages
	// it remembers as failed.
	Retry          string
	Paused         bool
	DriftInterval  time.Duration
	Packages       []hostapi.PackageSpec
	ResolveErrors  []string
	Gates          []GateSpec
	Isolations     []string
	Conditions     []ReportedCondition
	ConditionNotes []string // malformed Condition ConfigMap entries, in words
}

// ReadMachine reads a Machine, resolves its package versions and reads its Condition ConfigMaps.
func (a *Activities) ReadMachine(ctx context.Context, p ReadMachineParams) (MachineDesired, error) {
	var m kokv1.Machine
	if err := a.Client.Get(ctx, types.NamespacedName{Name: p.Name}, &m); err != nil {
		if apierrors.IsNotFound(err) {
			return MachineDesired{}, nil
		}
		return MachineDesired{}, fmt.Errorf("get machine %s: %w", p.Name, err)
	}
	d := MachineDesired{
		Found:         true,
		Generation:    m.Generation,
		UID:           string(m.UID),
		Host:          m.HostName(),
		Deleting:      !m.DeletionTimestamp.IsZero(),
		Orphan:        m.Spec.DeletionPolicy == kokv1.DeletionPolicyOrphan || m.Annotations[kokv1.AnnotationOrphan] == "true",
		Retry:         m.Annotations[kokv1.AnnotationRetry],
		Paused:        m.Spec.Paused,
		DriftInterval: DefaultDriftInterval,
	}
	if m.Spec.DriftCheckInterval != nil {
		d.DriftInterval = m.Spec.DriftCheckInterval.Duration
	}
	for _, ref := range m.Spec.Packages {
		name := ref.Name + "-" + ref.Version
		var mpv kokv1.MachinePackageVersion
		if err := a.Client.Get(ctx, types.NamespacedName{Name: name}, &mpv); err != nil {
			if apierrors.IsNotFound(err) {
				d.ResolveErrors = append(d.ResolveErrors, fmt.Sprintf("package %s version %s: MachinePackageVersion %s does not exist", ref.Name, ref.Version, name))
				continue
			}
			return MachineDesired{}, fmt.Errorf("get MachinePackageVersion %s: %w", name, err)
		}
		if mpv.Status.Phase == kokv1.PackageVersionInvalid {
			d.ResolveErrors = append(d.ResolveErrors, fmt.Sprintf("package %s version %s: MachinePackageVersion %s is Invalid", ref.Name, ref.Version, name))
			continue
		}
		d.Packages = append(d.Packages, PackageSpecFrom(&mpv))
	}
	for _, g := range m.Spec.ReadinessGates {
		mode := string(g.Mode)
		if mode == "" {
			mode = string(kokv1.GateContinuous)
		}
		d.Gates = append(d.Gates, GateSpec{Type: g.ConditionType, Mode: mode})
	}
	for _, iso := range m.Spec.Isolations {
		d.Isolations = append(d.Isolations, iso.Requester)
	}
	var cms corev1.ConfigMapList
	if err := a.Client.List(ctx, &cms, client.InNamespace(ConditionNamespace), client.MatchingLabels{LabelNode: m.Name}); err != nil {
		return MachineDesired{}, fmt.Errorf("list condition ConfigMaps of %s: %w", m.Name, err)
	}
	d.Conditions, d.ConditionNotes = ParseConditionMaps(cms.Items)
	return d, nil
}

// PackageSpecFrom converts a catalogue entry into what the agent needs.
func PackageSpecFrom(mpv *kokv1.MachinePackageVersion) hostapi.PackageSpec {
	s := mpv.Spec
	out := hostapi.PackageSpec{
		Name: s.Package, Version: s.Version, Type: string(s.Type), Installer: string(s.Installer),
		DependsOn: append([]string(nil), s.DependsOn...), RebootRequired: s.RebootRequired,
	}
	if out.Type == "" {
		out.Type = string(kokv1.PackageComponent)
	}
	if out.Installer == "" {
		out.Installer = string(kokv1.InstallerLocal)
	}
	if s.Artifact != nil {
		out.ArtifactURL, out.SHA256 = s.Artifact.URL, s.Artifact.SHA256
	}
	for _, f := range s.ConfigFiles {
		mode := uint32(0o644)
		if f.Mode != nil {
			mode = uint32(*f.Mode)
		}
		out.ConfigFiles = append(out.ConfigFiles, hostapi.ConfigFile{Path: f.Path, Content: f.Content, Mode: mode})
	}
	if len(s.Sysctls) > 0 {
		out.Sysctls = map[string]string{}
		for k, v := range s.Sysctls {
			out.Sysctls[k] = v
		}
	}
	if s.Service != nil {
		svc := &hostapi.ServiceSpec{
			Name: s.Service.Name, Command: append([]string(nil), s.Service.Command...),
			Args: append([]string(nil), s.Service.Args...), RestartPolicy: string(s.Service.RestartPolicy),
		}
		if svc.Name == "" {
			svc.Name = s.Package
		}
		if svc.RestartPolicy == "" {
			svc.RestartPolicy = string(kokv1.RestartAlways)
		}
		if len(s.Service.Env) > 0 {
			svc.Env = map[string]string{}
			for _, e := range s.Service.Env {
				svc.Env[e.Name] = e.Value
			}
		}
		out.Service = svc
	}
	if hc := s.HealthCheck; hc != nil {
		p := &hostapi.ProbeSpec{
			InitialDelaySec: int(hc.InitialDelaySeconds), PeriodSec: int(hc.PeriodSeconds),
			TimeoutSec: int(hc.TimeoutSeconds), FailureThreshold: int(hc.FailureThreshold),
		}
		switch {
		case hc.Exec != nil:
			p.Exec = append([]string(nil), hc.Exec.Command...)
		case hc.HTTP != nil:
			p.HTTPURL, p.ExpectStatus, p.InsecureSkipVerify = hc.HTTP.URL, int(hc.HTTP.ExpectStatus), hc.HTTP.InsecureSkipVerify
		case hc.TCP != nil:
			p.TCPAddress = hc.TCP.Address
		}
		out.HealthCheck = p
	}
	return out
}

// ConditionReport is one condition the workflow sets on the Machine.
type ConditionReport struct {
	Type, Status, Reason, Message string
}

// ComponentReport is one package's state as the workflow sees it.
type ComponentReport struct {
	Name, Version, Phase, Message string
}

// MachineReport is the progress the Machine workflow publishes into status. The workflow owns
// every status field but status.workflow, which the watcher writes.
type MachineReport struct {
	Name               string
	ObservedGeneration int64
	Phase              string
	Schedulable        bool
	Components         []ComponentReport
	Facts              *hostapi.FactsResult
	Conditions         []ConditionReport
	// ReportedConditions are the Condition ConfigMaps' conditions, copied as they are.
	ReportedConditions []ReportedCondition
	LastDriftCheck     time.Time
	// ObservedInputs is the watcher's digest of the inputs the workflow has acted on (the newest
	// reconcile signal's ReconcileSignal.Inputs); empty leaves status.observedInputs as it is.
	ObservedInputs string
	Now            time.Time // the workflow's clock, for transition times
}

// ReportMachineStatus writes the workflow's progress into the Machine's status. It only patches
// when something changed, and keeps lastTransitionTime of conditions and components that did not.
func (a *Activities) ReportMachineStatus(ctx context.Context, r MachineReport) error {
	var m kokv1.Machine
	if err := a.Client.Get(ctx, types.NamespacedName{Name: r.Name}, &m); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get machine %s: %w", r.Name, err)
	}
	before := m.DeepCopy()
	now := metav1.NewTime(r.Now)
	st := &m.Status
	st.Phase = kokv1.MachinePhase(r.Phase)
	st.Schedulable = r.Schedulable
	if r.ObservedGeneration > st.ObservedGeneration {
		st.ObservedGeneration = r.ObservedGeneration
	}
	if !r.LastDriftCheck.IsZero() {
		t := metav1.NewTime(r.LastDriftCheck)
		st.LastDriftCheckTime = &t
	}
	if r.ObservedInputs != "" {
		st.ObservedInputs = r.ObservedInputs
	}
	if r.Facts != nil {
		st.Host = &kokv1.HostFacts{OS: r.Facts.OS, Kernel: r.Facts.Kernel, Arch: r.Facts.Arch}
	}

	old := map[string]kokv1.MachineComponentStatus{}
	for _, c := range st.Components {
		old[c.Name] = c
	}
	st.Components = nil
	var versions []string
	for _, c := range r.Components {
		cs := kokv1.MachineComponentStatus{Name: c.Name, Version: c.Version, Phase: kokv1.ComponentPhase(c.Phase), Message: c.Message}
		if prev, ok := old[c.Name]; ok && prev.Phase == cs.Phase && prev.LastTransitionTime != nil {
			cs.LastTransitionTime = prev.LastTransitionTime
		} else {
			cs.LastTransitionTime = &now
		}
		st.Components = append(st.Components, cs)
		if c.Phase == string(kokv1.ComponentRunning) {
			versions = append(versions, c.Name+"="+c.Version)
		}
	}
	sort.Slice(st.Components, func(i, j int) bool { return st.Components[i].Name < st.Components[j].Name })
	sort.Strings(versions)
	st.Versions = strings.Join(versions, ",")

	// Reported conditions first, then the workflow's own: kok's verdicts win a name clash.
	wanted := map[string]bool{}
	for _, c := range r.ReportedConditions {
		reason := c.Reason
		if reason == "" {
			reason = "Reported"
		}
		msg := c.Message
		if msg == "" {
			msg = "reported by " + c.Reporter
		}
		setCondition(st, now, m.Generation, c.Type, c.Status, reason, msg)
		wanted[c.Type] = true
	}
	for _, c := range r.Conditions {
		setCondition(st, now, m.Generation, c.Type, c.Status, c.Reason, c.Message)
		wanted[c.Type] = true
	}
	// A reporter that stopped reporting a condition takes it away.
	kept := st.Conditions[:0]
	for _, c := range st.Conditions {
		if wanted[c.Type] {
			kept = append(kept, c)
		}
	}
	st.Conditions = kept

	if equality.Semantic.DeepEqual(before.Status, m.Status) {
		return nil
	}
	if err := a.Client.Status().Patch(ctx, &m, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("patch status of machine %s: %w", r.Name, err)
	}
	return nil
}

func setCondition(st *kokv1.MachineStatus, now metav1.Time, gen int64, typ, status, reason, msg string) {
	if len(msg) > 32768 {
		msg = msg[:32768]
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: typ, Status: metav1.ConditionStatus(status), Reason: reason, Message: msg,
		ObservedGeneration: gen, LastTransitionTime: now,
	})
}

// MachineEventParams is one Kubernetes Event on a Machine. Key makes it idempotent: the same key
// is the same Event (the workflow derives it from its run and step), so a retry creates nothing new.
type MachineEventParams struct {
	Machine string
	Key     string
	Type    string // Normal or Warning
	Reason  string
	Message string
	Time    time.Time
}

// RecordMachineEvent records what the workflow did (e.g. a drift repair) as an Event on the Machine.
func (a *Activities) RecordMachineEvent(ctx context.Context, p MachineEventParams) error {
	var m kokv1.Machine
	if err := a.Client.Get(ctx, types.NamespacedName{Name: p.Machine}, &m); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get machine %s: %w", p.Machine, err)
	}
	ref := corev1.ObjectReference{
		APIVersion: kokv1.SchemeGroupVersion.String(), Kind: "Machine", Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion,
	}
	return CreateEvent(ctx, a.Client, ref, p.Key, EventSpec{
		Type: p.Type, Reason: p.Reason, Message: p.Message, Time: p.Time, Component: "kok-machine-workflow", Controller: "kok.dev/machine",
	})
}

// EventSpec is what an Event says and who says it.
type EventSpec struct {
	Type, Reason, Message string
	Time                  time.Time
	// Component is the Event's source; Controller its reporting controller.
	Component, Controller string
}

// CreateEvent writes an Event about a cluster-scoped kok object into kokv1.EventNamespace. Its
// name is the object's name and a hash of key, so the same key (a workflow's retried activity)
// writes one Event, never two.
func CreateEvent(ctx context.Context, c client.Client, about corev1.ObjectReference, key string, e EventSpec) error {
	sum := sha256.Sum256([]byte(key))
	t := metav1.NewTime(e.Time)
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: kokv1.EventNamespace, Name: about.Name + "." + hex.EncodeToString(sum[:8])},
		InvolvedObject: about,
		Type:           e.Type, Reason: e.Reason, Message: e.Message,
		Source:         corev1.EventSource{Component: e.Component},
		FirstTimestamp: t, LastTimestamp: t, Count: 1,
		ReportingController: e.Controller, ReportingInstance: "kok-manager",
	}
	if err := c.Create(ctx, ev); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("record event on %s %s: %w", about.Kind, about.Name, err)
	}
	return nil
}

// ReleaseMachineParams names a Machine whose teardown is done.
type ReleaseMachineParams struct {
	Name       string
	DeleteNode bool
	// UID is the Machine the workflow tore down. When set, a Machine of that name with another
	// UID (deleted and created again meanwhile) is left alone: neither its Node nor its
	// finalizer is touched. Empty (workflows started before UIDs were carried) acts by name.
	UID string
}

// ReleaseMachine deletes the Node (when asked) and removes the finalizer, letting the Machine go.
func (a *Activities) ReleaseMachine(ctx context.Context, p ReleaseMachineParams) error {
	var m kokv1.Machine
	err := a.Client.Get(ctx, types.NamespacedName{Name: p.Name}, &m)
	switch {
	case apierrors.IsNotFound(err):
		if p.UID != "" {
			// Gone already (an earlier attempt of this call let it go). A Node of that name
			// may belong to a new Machine by now: leave it.
			return nil
		}
	case err != nil:
		return fmt.Errorf("get machine %s: %w", p.Name, err)
	case p.UID != "" && string(m.UID) != p.UID:
		return nil // another Machine of the same name: not ours to release
	}
	if p.DeleteNode {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: p.Name}}
		if err := a.Client.Delete(ctx, node); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete node %s: %w", p.Name, err)
		}
	}
	if apierrors.IsNotFound(err) { // acting by name (legacy): the Machine is gone already
		return nil //nolint:nilerr // gone is what releasing wants
	}
	if !controllerutil.ContainsFinalizer(&m, MachineFinalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(m.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(&m, MachineFinalizer)
	if err := a.Client.Patch(ctx, &m, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer of machine %s: %w", p.Name, err)
	}
	return nil
}
