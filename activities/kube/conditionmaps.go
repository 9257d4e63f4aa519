package kube

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	kokv1 "kok.dev/api/v1alpha1"
)

// Condition ConfigMaps: how operators other than kok report a node's sub-final-state.
//
// Each operator keeps one ConfigMap per node in namespace kok-system, labelled
// kok.dev/node=<node> and kok.dev/reporter=<operator>. Its data holds one key per condition type,
// valued True, False or Unknown, with optional <type>.reason and <type>.message keys:
//
//	data:
//	  NetworkReady: "True"
//	  NetworkReady.message: "calico-node running"
//
// ConfigMap keys cannot hold '/', so a domain-prefixed type (example.com/NetworkReady) is
// reported in the optional key "conditions", a JSON list of {type, status, reason, message}.
const (
	ConditionNamespace = kokv1.ConditionNamespace
	LabelNode          = kokv1.LabelNode
	LabelReporter      = kokv1.LabelReporter
	conditionsListKey  = "conditions"
)

// ReportedCondition is one condition an operator reported for a node.
type ReportedCondition struct {
	Type     string
	Status   string // True, False or Unknown
	Reason   string
	Message  string
	Reporter string // the ConfigMap's kok.dev/reporter label (or its name when unlabelled)
	Source   string // namespace/name of the ConfigMap
}

// ParseConditionMaps reads every condition from a node's Condition ConfigMaps, sorted by type.
// A type reported by two ConfigMaps takes the worst status (False over Unknown over True), so a
// second reporter can never hide the first one's failure. Malformed entries are returned as
// problems, in words, and left out.
func ParseConditionMaps(cms []corev1.ConfigMap) (conds []ReportedCondition, problems []string) {
	byType := map[string]ReportedCondition{}
	add := func(c ReportedCondition) {
		switch c.Status {
		case "True", "False", "Unknown":
		default:
			problems = append(problems, fmt.Sprintf("%s: condition %s has status %q, want True, False or Unknown", c.Source, c.Type, c.Status))
			return
		}
		if prev, ok := byType[c.Type]; ok && severity(prev.Status) >= severity(c.Status) {
			return
		}
		byType[c.Type] = c
	}
	sorted := append([]corev1.ConfigMap(nil), cms...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, cm := range sorted {
		source := cm.Namespace + "/" + cm.Name
		reporter := cm.Labels[LabelReporter]
		if reporter == "" {
			reporter = cm.Name
		}
		keys := make([]string, 0, len(cm.Data))
		for k := range cm.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == conditionsListKey {
				var list []struct{ Type, Status, Reason, Message string }
				if err := json.Unmarshal([]byte(cm.Data[k]), &list); err != nil {
					problems = append(problems, fmt.Sprintf("%s: key %q is not a JSON list of conditions: %v", source, k, err))
					continue
				}
				for _, c := range list {
					add(ReportedCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message, Reporter: reporter, Source: source})
				}
				continue
			}
			if strings.HasSuffix(k, ".reason") || strings.HasSuffix(k, ".message") {
				continue
			}
			add(ReportedCondition{
				Type: k, Status: cm.Data[k],
				Reason: cm.Data[k+".reason"], Message: cm.Data[k+".message"],
				Reporter: reporter, Source: source,
			})
		}
	}
	for _, c := range byType {
		conds = append(conds, c)
	}
	sort.Slice(conds, func(i, j int) bool { return conds[i].Type < conds[j].Type })
	return conds, problems
}

func severity(status string) int {
	switch status {
	case "False":
		return 2
	case "Unknown":
		return 1
	default:
		return 0
	}
}
