package machine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"

	corev1 "k8s.io/api/core/v1"

	kokv1 "kok.dev/api/v1alpha1"
)

// digestVersion prefixes every digest, so a change of what goes into it reads as "changed" once
// (one signal per Machine after an upgrade of the watcher) rather than as a false match.
const digestVersion = "v1:"

// Inputs is everything the Machine workflow reads on a pass, as the watcher sees it in its cache.
// Its digest is the signal's payload and, once the workflow has acted on it, the Machine's
// status.observedInputs.
type Inputs struct {
	// Machine is the Machine; its UID and generation stand for its spec.
	Machine *kokv1.Machine
	// PackageVersions are the MachinePackageVersions its spec names, by name; a name without an
	// entry does not exist (the workflow reports it unresolved).
	PackageVersions map[string]*kokv1.MachinePackageVersion
	// ConditionMaps are its node's Condition ConfigMaps.
	ConditionMaps []corev1.ConfigMap
	// NodeExists tells whether the kubelet has registered the Node.
	NodeExists bool
}

// digestDoc is what the digest is taken of: plain values in a fixed order (encoding/json writes
// map keys sorted), so equal inputs give equal digests in every process.
type digestDoc struct {
	UID        string            `json:"u"`
	Generation int64             `json:"g"`
	Retry      string            `json:"r,omitempty"`
	Deleting   bool              `json:"d,omitempty"`
	Packages   []packageDoc      `json:"p,omitempty"`
	Conditions []conditionMapDoc `json:"c,omitempty"`
	Node       bool              `json:"n"`
}

type packageDoc struct {
	Name       string `json:"n"`
	UID        string `json:"u,omitempty"`
	Generation int64  `json:"g,omitempty"`
	Phase      string `json:"p,omitempty"`
}

type conditionMapDoc struct {
	Name string            `json:"n"`
	Data map[string]string `json:"d,omitempty"`
}

// Digest is a short fingerprint of in: it changes when anything the workflow reads changes (spec
// generation, the object's identity, the retry annotation, deletion, a named package version's
// appearance, spec or phase, the Data of a Condition ConfigMap, the Node's registration) and only
// then: labels, other annotations, status and resourceVersion do not count.
func Digest(in Inputs) string {
	m := in.Machine
	doc := digestDoc{
		UID: string(m.UID), Generation: m.Generation, Retry: m.Annotations[kokv1.AnnotationRetry],
		Deleting: !m.DeletionTimestamp.IsZero(), Node: in.NodeExists,
	}
	for _, ref := range m.Spec.Packages {
		name := ref.Name + "-" + ref.Version
		p := packageDoc{Name: name}
		if v := in.PackageVersions[name]; v != nil {
			p.UID, p.Generation, p.Phase = string(v.UID), v.Generation, string(v.Status.Phase)
		}
		doc.Packages = append(doc.Packages, p)
	}
	for _, cm := range in.ConditionMaps {
		doc.Conditions = append(doc.Conditions, conditionMapDoc{Name: cm.Name, Data: cm.Data})
	}
	sort.Slice(doc.Conditions, func(i, j int) bool { return doc.Conditions[i].Name < doc.Conditions[j].Name })
	b, err := json.Marshal(doc)
	if err != nil {
		// Strings, numbers and string maps always encode.
		panic("machine inputs digest: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return digestVersion + hex.EncodeToString(sum[:16])
}

// MustSignal decides whether the watcher signals. Once this process has sent a digest it
// compares with that one: Temporal holds a delivered signal durably, so the same inputs again need
// no second signal, while inputs that changed and changed back before the workflow reported must
// be sent again. A process that has sent nothing yet (it just started) compares with the digest
// the workflow reports it has acted on, so a restart over unchanged Machines signals none.
func MustSignal(digest, observed, lastSent string) bool {
	if lastSent != "" {
		return digest != lastSent
	}
	return digest != observed
}
