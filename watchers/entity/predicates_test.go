package entity

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kokv1 "kok.dev/api/v1alpha1"
)

func TestUpdateMatters(t *testing.T) {
	now := metav1.NewTime(time.Unix(1, 0))
	base := func() *kokv1.Machine {
		return &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{
			Name: "m", Generation: 2, Labels: map[string]string{"a": "1"},
			Annotations: map[string]string{kokv1.AnnotationRetry: "t1", "other": "x"},
		}}
	}
	for _, tc := range []struct {
		name string
		edit func(*kokv1.Machine)
		want bool
	}{
		{"nothing", func(*kokv1.Machine) {}, false},
		{"status write", func(m *kokv1.Machine) { m.Status.ObservedInputs = "d"; m.ResourceVersion = "9" }, false},
		{"label", func(m *kokv1.Machine) { m.Labels["a"] = "2" }, false},
		{"unrelated annotation", func(m *kokv1.Machine) { m.Annotations["other"] = "y" }, false},
		{"finalizer added", func(m *kokv1.Machine) { m.Finalizers = []string{kokv1.MachineFinalizer} }, false},
		{"generation", func(m *kokv1.Machine) { m.Generation = 3 }, true},
		{"deletion", func(m *kokv1.Machine) { m.DeletionTimestamp = &now }, true},
		{"retry annotation", func(m *kokv1.Machine) { m.Annotations[kokv1.AnnotationRetry] = "t2" }, true},
		{"retry annotation removed", func(m *kokv1.Machine) { delete(m.Annotations, kokv1.AnnotationRetry) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, new := base(), base()
			tc.edit(new)
			if got := UpdateMatters(old, new, kokv1.AnnotationRetry); got != tc.want {
				t.Errorf("UpdateMatters = %v, want %v", got, tc.want)
			}
		})
	}
}
