package pki

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var testCerts = []Cert{
	{
		Name:       "server",
		CommonName: "kube-apiserver",
		Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
	},
	{
		Name:         "admin",
		CommonName:   "kok-admin",
		Organization: []string{"system:masters"},
		Usages:       []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	},
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	block, _ := pem.Decode(data)
	require.NotNil(t, block, "no PEM in %s", path)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return cert
}

func verify(t *testing.T, p *PKI, c Cert) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, p.CACertFile()))
	cert := readCert(t, p.CertFile(c.Name))
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: c.Usages, DNSName: firstOr(c.DNSNames)})
	require.NoError(t, err, "cert %s does not verify against the CA", c.Name)
	require.Equal(t, c.CommonName, cert.Subject.CommonName)
	require.Equal(t, c.Organization, cert.Subject.Organization)
	_, _, err = p.Pair(c.Name)
	require.NoError(t, err)
}

func firstOr(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = string(data)
	}
	return files
}

func TestEnsureCreatesVerifiableCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	p, err := Ensure(dir, testCerts)
	require.NoError(t, err)
	for _, c := range testCerts {
		verify(t, p, c)
	}
	require.True(t, p.CA.IsCA)
	require.Equal(t, readCert(t, p.CACertFile()).Raw, p.CA.Raw)

	info, err := os.Stat(p.KeyFile("admin"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "private keys must be private")

	pub, err := os.ReadFile(p.ServiceAccountPublicKeyFile())
	require.NoError(t, err)
	block, _ := pem.Decode(pub)
	require.NotNil(t, block)
	_, err = x509.ParsePKIXPublicKey(block.Bytes)
	require.NoError(t, err)
}

func TestEnsureReusesWhatIsThere(t *testing.T) {
	dir := t.TempDir()
	_, err := Ensure(dir, testCerts)
	require.NoError(t, err)
	before := snapshot(t, dir)

	_, err = Ensure(dir, testCerts)
	require.NoError(t, err)
	require.Equal(t, before, snapshot(t, dir), "a second call must not rewrite anything")
}

func TestEnsureRegeneratesOnlyWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := Ensure(dir, testCerts)
	require.NoError(t, err)
	before := snapshot(t, dir)

	require.NoError(t, os.Remove(filepath.Join(dir, "admin.key")))
	p, err := Ensure(dir, testCerts)
	require.NoError(t, err)
	after := snapshot(t, dir)
	require.NotEqual(t, before["admin.crt"], after["admin.crt"])
	require.NotEqual(t, before["admin.key"], after["admin.key"])
	for _, name := range []string{"ca.crt", "ca.key", "server.crt", "server.key", "sa.key", "sa.pub"} {
		require.Equal(t, before[name], after[name], "%s must be kept", name)
	}
	verify(t, p, testCerts[1])
}

func TestNewCAReissuesEveryLeaf(t *testing.T) {
	dir := t.TempDir()
	_, err := Ensure(dir, testCerts)
	require.NoError(t, err)
	before := snapshot(t, dir)

	require.NoError(t, os.Remove(filepath.Join(dir, "ca.crt")))
	p, err := Ensure(dir, testCerts)
	require.NoError(t, err)
	after := snapshot(t, dir)
	require.NotEqual(t, before["ca.crt"], after["ca.crt"])
	for _, c := range testCerts {
		require.NotEqual(t, before[c.Name+".crt"], after[c.Name+".crt"])
		verify(t, p, c)
	}
	require.Equal(t, before["sa.key"], after["sa.key"], "tokens already issued stay valid")
}

func TestChangedSpecReissuesLeaf(t *testing.T) {
	dir := t.TempDir()
	_, err := Ensure(dir, testCerts)
	require.NoError(t, err)
	before := snapshot(t, dir)

	changed := append([]Cert(nil), testCerts...)
	changed[0].DNSNames = []string{"localhost", "kubernetes"}
	p, err := Ensure(dir, changed)
	require.NoError(t, err)
	after := snapshot(t, dir)
	require.NotEqual(t, before["server.crt"], after["server.crt"])
	require.Equal(t, before["admin.crt"], after["admin.crt"])
	require.Equal(t, []string{"localhost", "kubernetes"}, readCert(t, p.CertFile("server")).DNSNames)
}

func TestExpiringLeafIsReissued(t *testing.T) {
	dir := t.TempDir()
	p, err := Ensure(dir, testCerts)
	require.NoError(t, err)
	require.True(t, leafUsable(dir, testCerts[0], p.CA, time.Now()))
	require.False(t, leafUsable(dir, testCerts[0], p.CA, time.Now().Add(leafValidity-renewBefore/2)))
}

func TestEnsureRejectsBadSpecs(t *testing.T) {
	for name, certs := range map[string][]Cert{
		"empty name":    {{CommonName: "x", Usages: testCerts[0].Usages}},
		"reserved name": {{Name: "ca", CommonName: "x", Usages: testCerts[0].Usages}},
		"path in name":  {{Name: "../x", CommonName: "x", Usages: testCerts[0].Usages}},
		"duplicate":     {testCerts[0], testCerts[0]},
		"no CN":         {{Name: "x", Usages: testCerts[0].Usages}},
		"no usage":      {{Name: "x", CommonName: "x"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Ensure(t.TempDir(), certs)
			require.Error(t, err)
		})
	}
}
