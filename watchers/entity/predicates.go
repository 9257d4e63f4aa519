package entity

import (
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// EntityChanged lets through the events of an entity (Machine, Cluster) its workflow cares about:
// creation and deletion, a new generation (a spec edit), a deletion timestamp being set, or a
// change of one of the annotations the workflow reads. Status writes (the workflow's own reports)
// and label or other metadata edits wake nothing.
func EntityChanged(annotations ...string) predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			if e.ObjectOld == nil || e.ObjectNew == nil {
				return true
			}
			return UpdateMatters(e.ObjectOld, e.ObjectNew, annotations...)
		},
	}
}

// UpdateMatters is EntityChanged's decision for one update.
func UpdateMatters(old, new client.Object, annotations ...string) bool {
	if old.GetGeneration() != new.GetGeneration() {
		return true
	}
	if old.GetDeletionTimestamp().IsZero() != new.GetDeletionTimestamp().IsZero() {
		return true
	}
	for _, a := range annotations {
		if old.GetAnnotations()[a] != new.GetAnnotations()[a] {
			return true
		}
	}
	return false
}

// Lifecycle lets through only creations and deletions (a Node registering or going away).
func Lifecycle() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}
