package harness

import (
	"net"
	"testing"
)

// FreePort asks the kernel for a loopback port that is free now. A process told to listen on it
// may still lose it to another in the short gap; tests that can bind :0 themselves should.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
