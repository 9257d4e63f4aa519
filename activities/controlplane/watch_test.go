package controlplane

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestObserveConfirmsAChangedVerdict(t *testing.T) {
	const last, down, other = "m1=ready;", "m1=noanswer;", "m1=unready;"
	for _, tc := range []struct {
		name    string
		confirm int
		seen    []string
		changed []bool
	}{
		{"the same verdict is no news", 2, []string{last, last, last}, []bool{false, false, false}},
		{"a change confirmed by two checks", 2, []string{down, down}, []bool{false, true}},
		{"confirm 0 acts like 1", 0, []string{down}, []bool{true}},
		{"a blip that goes away is no news", 2, []string{down, last, down}, []bool{false, false, false}},
		{"a different fault restarts the streak", 2, []string{down, other, other}, []bool{false, false, true}},
		{"three healthy checks end a wait", 3, []string{down, down, down}, []bool{false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st Streak
			for i, s := range tc.seen {
				var changed bool
				st, changed = Observe(last, tc.confirm, st, s)
				require.Equal(t, tc.changed[i], changed, "check %d", i+1)
			}
		})
	}
}

func TestCheckResultKeyLeavesTextsOut(t *testing.T) {
	a := CheckResult{Masters: []MasterCheck{{Host: "m1", Why: "readyz: etcd failed at 10:00"}, {Host: "m2", Ready: true, GitVersion: "v1.36.1"}}}
	b := CheckResult{Masters: []MasterCheck{{Host: "m1", Why: "readyz: etcd failed at 10:01"}, {Host: "m2", Ready: true}}}
	require.Equal(t, a.Key(), b.Key())
	require.Equal(t, "m1=unready;m2=ready;", a.Key())
	b.Masters[0].NoAnswer = true
	require.NotEqual(t, a.Key(), b.Key())
	require.Empty(t, CheckResult{}.Key())
}
