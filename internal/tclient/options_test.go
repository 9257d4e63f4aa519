package tclient_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"kok.dev/internal/codec"
	"kok.dev/internal/tclient"
)

var allEnv = []string{
	tclient.EnvAddress, tclient.EnvNamespace, tclient.EnvTLSCert, tclient.EnvTLSKey,
	tclient.EnvTLSCA, tclient.EnvTLSServerName, tclient.EnvCodecKeyFile,
}

func parse(t *testing.T, args ...string) tclient.Options {
	t.Helper()
	var o tclient.Options
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	require.NoError(t, fs.Parse(args))
	return o
}

func TestFlagDefaults(t *testing.T) {
	for _, name := range allEnv {
		t.Setenv(name, "")
	}
	require.Equal(t, tclient.Options{Address: "127.0.0.1:7233", Namespace: "kok"}, parse(t))
}

func TestEnvIsDefaultAndFlagsWin(t *testing.T) {
	env := map[string]string{
		tclient.EnvAddress:       "temporal.env:7233",
		tclient.EnvNamespace:     "env-ns",
		tclient.EnvTLSCert:       "/env/cert.pem",
		tclient.EnvTLSKey:        "/env/key.pem",
		tclient.EnvTLSCA:         "/env/ca.pem",
		tclient.EnvTLSServerName: "env.server",
		tclient.EnvCodecKeyFile:  "/env/codec.json",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	require.Equal(t, tclient.Options{
		Address:       "temporal.env:7233",
		Namespace:     "env-ns",
		TLSCertFile:   "/env/cert.pem",
		TLSKeyFile:    "/env/key.pem",
		TLSCAFile:     "/env/ca.pem",
		TLSServerName: "env.server",
		CodecKeyFile:  "/env/codec.json",
	}, parse(t))

	require.Equal(t, tclient.Options{
		Address:       "temporal.flag:7233",
		Namespace:     "flag-ns",
		TLSCertFile:   "/flag/cert.pem",
		TLSKeyFile:    "/flag/key.pem",
		TLSCAFile:     "/flag/ca.pem",
		TLSServerName: "flag.server",
		CodecKeyFile:  "/flag/codec.json",
	}, parse(t,
		"--temporal-address=temporal.flag:7233",
		"--temporal-namespace=flag-ns",
		"--temporal-tls-cert=/flag/cert.pem",
		"--temporal-tls-key=/flag/key.pem",
		"--temporal-tls-ca=/flag/ca.pem",
		"--temporal-tls-server-name=flag.server",
		"--codec-key-file=/flag/codec.json",
	))
}

// pki is a throwaway CA with a server and a client certificate, written as PEM files.
type pki struct {
	dir                               string
	caKey                             *ecdsa.PrivateKey
	ca                                *x509.Certificate
	caFile, serverCert, serverKey     string
	clientCert, clientKey, notPEMFile string
	serverName                        string
	serverTLSCert                     tls.Certificate
	nextSerial                        int64
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), serverName: "temporal.test", nextSerial: 1}
	var err error
	p.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(p.serial()),
		Subject:               pkix.Name{CommonName: "kok test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &p.caKey.PublicKey, p.caKey)
	require.NoError(t, err)
	p.ca, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	p.caFile = filepath.Join(p.dir, "ca.pem")
	writePEM(t, p.caFile, "CERTIFICATE", der)

	p.serverCert, p.serverKey = filepath.Join(p.dir, "server.pem"), filepath.Join(p.dir, "server-key.pem")
	p.issue(t, p.serverCert, p.serverKey, "temporal-frontend", x509.ExtKeyUsageServerAuth, p.serverName)
	p.serverTLSCert, err = tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	require.NoError(t, err)

	p.clientCert, p.clientKey = filepath.Join(p.dir, "client.pem"), filepath.Join(p.dir, "client-key.pem")
	p.issue(t, p.clientCert, p.clientKey, "kok-agent", x509.ExtKeyUsageClientAuth)

	p.notPEMFile = filepath.Join(p.dir, "not.pem")
	require.NoError(t, os.WriteFile(p.notPEMFile, []byte("hello"), 0o600))
	return p
}

func (p *pki) serial() int64 { p.nextSerial++; return p.nextSerial }

func (p *pki) issue(t *testing.T, certFile, keyFile, cn string, usage x509.ExtKeyUsage, dnsNames ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(p.serial()),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}, p.ca, &key.PublicKey, p.caKey)
	require.NoError(t, err)
	writePEM(t, certFile, "CERTIFICATE", der)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
}

// connPair returns both ends of a loopback TCP connection. net.Pipe would not do: its writes
// block until read, which deadlocks a TLS handshake that one side aborts.
func connPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	return server, client
}

func writePEM(t *testing.T, path, blockType string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600))
}

// handshake runs mutual TLS between the client config under test and a server that demands a
// client certificate from the test CA, and returns the client certificate's common name.
func (p *pki) handshake(t *testing.T, clientConfig *tls.Config) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	serverConn, clientConn := connPair(t)
	server := tls.Server(serverConn, &tls.Config{
		Certificates: []tls.Certificate{p.serverTLSCert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	client := tls.Client(clientConn, clientConfig)
	defer client.Close()
	defer server.Close()
	serverErr := make(chan error, 1)
	go func() { serverErr <- server.Handshake() }()
	require.NoError(t, client.Handshake())
	require.NoError(t, <-serverErr)
	peers := server.ConnectionState().PeerCertificates
	require.NotEmpty(t, peers)
	return peers[0].Subject.CommonName
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	o := tclient.Options{
		Address:       "127.0.0.1:7233",
		Namespace:     "kok",
		TLSCertFile:   p.clientCert,
		TLSKeyFile:    p.clientKey,
		TLSCAFile:     p.caFile,
		TLSServerName: p.serverName,
	}
	require.NoError(t, o.Validate())
	opts, err := o.ClientOptions(slog.Default())
	require.NoError(t, err)
	require.NotNil(t, opts.ConnectionOptions.TLS)
	require.Equal(t, "kok-agent", p.handshake(t, opts.ConnectionOptions.TLS))

	// A renewed certificate is picked up without a restart.
	p.issue(t, p.clientCert, p.clientKey, "kok-agent-renewed", x509.ExtKeyUsageClientAuth)
	require.Equal(t, "kok-agent-renewed", p.handshake(t, opts.ConnectionOptions.TLS))

	// Halfway through a renewal (new certificate, old key) the last good pair is still presented.
	p.issue(t, filepath.Join(p.dir, "next.pem"), filepath.Join(p.dir, "next-key.pem"), "kok-agent-next", x509.ExtKeyUsageClientAuth)
	next, err := os.ReadFile(filepath.Join(p.dir, "next.pem"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p.clientCert, next, 0o600))
	require.Equal(t, "kok-agent-renewed", p.handshake(t, opts.ConnectionOptions.TLS))
}

func TestServerVerification(t *testing.T) {
	p := newPKI(t)
	o := tclient.Options{Address: "127.0.0.1:7233", Namespace: "kok", TLSCAFile: p.caFile, TLSServerName: "someone.else"}
	opts, err := o.ClientOptions(nil)
	require.NoError(t, err)

	serverConn, clientConn := connPair(t)
	server := tls.Server(serverConn, &tls.Config{Certificates: []tls.Certificate{p.serverTLSCert}, MinVersion: tls.VersionTLS12})
	client := tls.Client(clientConn, opts.ConnectionOptions.TLS)
	defer server.Close()
	serverDone := make(chan struct{})
	go func() { _ = server.Handshake(); close(serverDone) }()
	err = client.Handshake()
	require.ErrorContains(t, err, "someone.else")
	require.NoError(t, client.Close())
	<-serverDone
}

func TestNoTLSWithoutTLSFlags(t *testing.T) {
	opts, err := tclient.Options{Address: "127.0.0.1:7233", Namespace: "kok"}.ClientOptions(nil)
	require.NoError(t, err)
	require.Nil(t, opts.ConnectionOptions.TLS)
	require.Nil(t, opts.DataConverter)
	require.Equal(t, "127.0.0.1:7233", opts.HostPort)
	require.Equal(t, "kok", opts.Namespace)
}

func TestCodecKeyFileSetsConverters(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "codec.json")
	require.NoError(t, codec.GenerateKeyFile(keyFile))
	opts, err := tclient.Options{Address: "127.0.0.1:7233", Namespace: "kok", CodecKeyFile: keyFile}.ClientOptions(nil)
	require.NoError(t, err)
	require.NotNil(t, opts.DataConverter)
	require.NotNil(t, opts.FailureConverter)
	p, err := opts.DataConverter.ToPayload("x")
	require.NoError(t, err)
	require.Equal(t, codec.EncodingEncrypted, string(p.Metadata["encoding"]))
}

func TestValidationErrors(t *testing.T) {
	p := newPKI(t)
	missing := filepath.Join(p.dir, "missing.pem")
	base := tclient.Options{Address: "127.0.0.1:7233", Namespace: "kok"}
	with := func(f func(*tclient.Options)) tclient.Options { o := base; f(&o); return o }

	for name, tc := range map[string]struct {
		o    tclient.Options
		want []string
	}{
		"empty address":          {with(func(o *tclient.Options) { o.Address = "" }), []string{"--temporal-address is empty"}},
		"address without port":   {with(func(o *tclient.Options) { o.Address = "temporal" }), []string{"--temporal-address", `"temporal"`, "host:port"}},
		"empty namespace":        {with(func(o *tclient.Options) { o.Namespace = "" }), []string{"--temporal-namespace is empty"}},
		"cert without key":       {with(func(o *tclient.Options) { o.TLSCertFile = p.clientCert }), []string{"--temporal-tls-cert is set but --temporal-tls-key is not"}},
		"key without cert":       {with(func(o *tclient.Options) { o.TLSKeyFile = p.clientKey }), []string{"--temporal-tls-key is set but --temporal-tls-cert is not"}},
		"missing cert":           {with(func(o *tclient.Options) { o.TLSCertFile, o.TLSKeyFile = missing, p.clientKey }), []string{"--temporal-tls-cert/--temporal-tls-key", "missing.pem"}},
		"mismatched pair":        {with(func(o *tclient.Options) { o.TLSCertFile, o.TLSKeyFile = p.clientCert, p.serverKey }), []string{"--temporal-tls-cert/--temporal-tls-key", "private key does not match"}},
		"missing CA":             {with(func(o *tclient.Options) { o.TLSCAFile = missing }), []string{"--temporal-tls-ca", "missing.pem"}},
		"CA not PEM":             {with(func(o *tclient.Options) { o.TLSCAFile = p.notPEMFile }), []string{"--temporal-tls-ca", "no PEM certificate"}},
		"missing codec key file": {with(func(o *tclient.Options) { o.CodecKeyFile = missing }), []string{"--codec-key-file", "missing.pem"}},
		"bad codec key file":     {with(func(o *tclient.Options) { o.CodecKeyFile = p.notPEMFile }), []string{"--codec-key-file", "not valid JSON"}},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.o.Validate()
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			_, err = tc.o.ClientOptions(nil)
			require.Error(t, err)
		})
	}
}
