package machines

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

const none = "<none>"

// age is how long ago t was, the way kubectl prints it.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// agePtr is age for optional times.
func agePtr(t *metav1.Time, now time.Time) string {
	if t == nil {
		return "<unknown>"
	}
	return age(*t, now)
}

// cell makes s safe for one tabwriter cell: a tab or newline in a message would break the
// table's columns. Empty becomes or.
func cell(s, or string) string {
	if s == "" {
		return or
	}
	return strings.Join(strings.Fields(s), " ")
}
