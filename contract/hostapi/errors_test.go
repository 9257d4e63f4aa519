package hostapi

import "testing"

func TestPermanentError(t *testing.T) {
	for typ, want := range map[string]bool{
		ErrTypeChecksumMismatch:    true,
		ErrTypeBadSpec:             true,
		ErrTypeInstallFailed:       true,
		ErrTypeArtifactUnavailable: false,
		ErrTypeNotInstalled:        false,
		"":                         false, // not an application error of ours: a timeout, say
	} {
		if got := PermanentError(typ); got != want {
			t.Errorf("PermanentError(%q) = %v, want %v", typ, got, want)
		}
	}
}
