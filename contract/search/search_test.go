package search

import "testing"

func TestRunningQuery(t *testing.T) {
	for _, tc := range []struct{ cluster, kind, want string }{
		{"prod", "Machine", "KokCluster = 'prod' AND KokKind = 'Machine' AND ExecutionStatus = 'Running'"},
		{"a'b", "Machine", `KokCluster = 'a\'b' AND KokKind = 'Machine' AND ExecutionStatus = 'Running'`},
	} {
		if got := RunningQuery(tc.cluster, tc.kind); got != tc.want {
			t.Errorf("RunningQuery(%q, %q) = %s, want %s", tc.cluster, tc.kind, got, tc.want)
		}
	}
}

func TestAttributes(t *testing.T) {
	sa := Attributes("prod", "Machine")
	if v, ok := sa.GetKeyword(Cluster); !ok || v != "prod" {
		t.Errorf("KokCluster = %q, %v", v, ok)
	}
	if v, ok := sa.GetKeyword(Kind); !ok || v != "Machine" {
		t.Errorf("KokKind = %q, %v", v, ok)
	}
	if len(Definitions()) != 2 {
		t.Errorf("Definitions() = %v", Definitions())
	}
}
