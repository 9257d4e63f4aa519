package tclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"kok.dev/internal/codec"
)

// Defaults match the local system that `kok dev up` starts.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "kok"
)

// Environment variables read as flag defaults. The TEMPORAL_* names are the Temporal CLI's, so
// one environment serves both tools.
const (
	EnvAddress       = "TEMPORAL_ADDRESS"
	EnvNamespace     = "TEMPORAL_NAMESPACE"
	EnvTLSCert       = "TEMPORAL_TLS_CERT"
	EnvTLSKey        = "TEMPORAL_TLS_KEY"
	EnvTLSCA         = "TEMPORAL_TLS_CA"
	EnvTLSServerName = "TEMPORAL_TLS_SERVER_NAME"
	EnvCodecKeyFile  = "KOK_CODEC_KEY_FILE"
)

// Flag names, used in error messages so that users know what to fix.
const (
	FlagAddress       = "temporal-address"
	FlagNamespace     = "temporal-namespace"
	FlagTLSCert       = "temporal-tls-cert"
	FlagTLSKey        = "temporal-tls-key"
	FlagTLSCA         = "temporal-tls-ca"
	FlagTLSServerName = "temporal-tls-server-name"
	FlagCodecKeyFile  = "codec-key-file"
)

// Options says how to reach Temporal. TLS is on as soon as any TLS field is set.
type Options struct {
	Address   string
	Namespace string

	// TLSCertFile and TLSKeyFile are the client certificate for mutual TLS; they go together.
	TLSCertFile string
	TLSKeyFile  string
	// TLSCAFile verifies the server; empty means the system roots.
	TLSCAFile     string
	TLSServerName string

	// CodecKeyFile, when set, encrypts every payload with the keys in that file (see package codec).
	CodecKeyFile string

	// Identity names this process in workflow histories; empty lets the SDK pick pid@host.
	Identity string
}

// AddFlags registers the Temporal flags. Environment variables are read now and become the flag
// defaults, so a flag given on the command line wins over the environment.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Address, FlagAddress, envOr(EnvAddress, DefaultAddress),
		"Temporal frontend host:port (env "+EnvAddress+")")
	fs.StringVar(&o.Namespace, FlagNamespace, envOr(EnvNamespace, DefaultNamespace),
		"Temporal namespace (env "+EnvNamespace+")")
	fs.StringVar(&o.TLSCertFile, FlagTLSCert, os.Getenv(EnvTLSCert),
		"PEM client certificate for mutual TLS with Temporal; needs --"+FlagTLSKey+" (env "+EnvTLSCert+")")
	fs.StringVar(&o.TLSKeyFile, FlagTLSKey, os.Getenv(EnvTLSKey),
		"PEM private key of --"+FlagTLSCert+" (env "+EnvTLSKey+")")
	fs.StringVar(&o.TLSCAFile, FlagTLSCA, os.Getenv(EnvTLSCA),
		"PEM CA bundle that signs the Temporal frontend's certificate; default: the system roots (env "+EnvTLSCA+")")
	fs.StringVar(&o.TLSServerName, FlagTLSServerName, os.Getenv(EnvTLSServerName),
		"server name to verify in the frontend's certificate when it differs from the address host (env "+EnvTLSServerName+")")
	fs.StringVar(&o.CodecKeyFile, FlagCodecKeyFile, os.Getenv(EnvCodecKeyFile),
		"key file that encrypts every Temporal payload (create one with `kok codec-key generate`); "+
			"every process of one system must use the same file (env "+EnvCodecKeyFile+")")
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// Validate checks the options and reads every file they name, so that a mistake surfaces at
// start-up, naming the flag, rather than as a failed TLS handshake or an undecodable payload.
func (o Options) Validate() error {
	_, _, err := o.build()
	return err
}

func (o Options) tlsEnabled() bool {
	return o.TLSCertFile != "" || o.TLSKeyFile != "" || o.TLSCAFile != "" || o.TLSServerName != ""
}

func (o Options) build() (*tls.Config, *codec.Keyring, error) {
	if o.Address == "" {
		return nil, nil, fmt.Errorf("--%s is empty: give the Temporal frontend as host:port", FlagAddress)
	}
	if _, _, err := net.SplitHostPort(o.Address); err != nil {
		return nil, nil, fmt.Errorf("--%s %q is not host:port: %w", FlagAddress, o.Address, err)
	}
	if o.Namespace == "" {
		return nil, nil, fmt.Errorf("--%s is empty", FlagNamespace)
	}
	var tlsConfig *tls.Config
	if o.tlsEnabled() {
		var err error
		if tlsConfig, err = o.tlsConfig(); err != nil {
			return nil, nil, err
		}
	}
	var keys *codec.Keyring
	if o.CodecKeyFile != "" {
		var err error
		if keys, err = codec.LoadKeyring(o.CodecKeyFile); err != nil {
			return nil, nil, fmt.Errorf("--%s: %w", FlagCodecKeyFile, err)
		}
	}
	return tlsConfig, keys, nil
}

func (o Options) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: o.TLSServerName,
	}
	switch {
	case o.TLSCertFile != "" && o.TLSKeyFile == "":
		return nil, fmt.Errorf("--%s is set but --%s is not: a client certificate needs its key", FlagTLSCert, FlagTLSKey)
	case o.TLSCertFile == "" && o.TLSKeyFile != "":
		return nil, fmt.Errorf("--%s is set but --%s is not: a client key needs its certificate", FlagTLSKey, FlagTLSCert)
	case o.TLSCertFile != "":
		r, err := newCertReloader(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = r.get
	}
	if o.TLSCAFile != "" {
		pem, err := os.ReadFile(o.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", FlagTLSCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--%s %s holds no PEM certificate", FlagTLSCA, o.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// certReloader reads the client key pair again at every TLS handshake. Certificates issued by
// cert-manager and the like are renewed in place; a long-running agent would otherwise keep
// presenting the expired one until restarted. Handshakes are rare (gRPC keeps its connection),
// so the re-read costs nothing that matters.
type certReloader struct {
	certFile, keyFile string

	mu       sync.Mutex
	lastGood *tls.Certificate
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.get(nil); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		// A renewal writes the certificate and the key one after the other; between the two
		// writes they do not match. Keep presenting the previous pair until both are in place.
		if r.lastGood != nil {
			return r.lastGood, nil
		}
		return nil, fmt.Errorf("--%s/--%s: load client key pair: %w", FlagTLSCert, FlagTLSKey, err)
	}
	r.lastGood = &cert
	return &cert, nil
}

// ClientOptions builds Temporal client options. logger receives the SDK's logs; nil means
// slog.Default(). When a codec key file is set, failure messages and stack traces are encrypted
// as well, since error text is where a secret most easily leaks.
func (o Options) ClientOptions(logger *slog.Logger) (client.Options, error) {
	tlsConfig, keys, err := o.build()
	if err != nil {
		return client.Options{}, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	opts := client.Options{
		HostPort:          o.Address,
		Namespace:         o.Namespace,
		Identity:          o.Identity,
		Logger:            log.NewStructuredLogger(logger),
		ConnectionOptions: client.ConnectionOptions{TLS: tlsConfig},
	}
	if keys != nil {
		dc := codec.NewDataConverter(keys)
		opts.DataConverter = dc
		opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
			DataConverter:          dc,
			EncodeCommonAttributes: true,
		})
	}
	return opts, nil
}

// Dial connects to Temporal and checks that the frontend answers.
func Dial(ctx context.Context, o Options, logger *slog.Logger) (client.Client, error) {
	opts, err := o.ClientOptions(logger)
	if err != nil {
		return nil, err
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %q; set --%s/--%s): %w",
			o.Address, o.Namespace, FlagAddress, FlagNamespace, err)
	}
	return c, nil
}
