package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

const (
	caName = "ca"
	saName = "sa"

	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore makes a leaf (or the CA) that expires within this window count as unusable,
	// so a state dir left alone for a year does not start with a certificate about to lapse.
	renewBefore = 30 * 24 * time.Hour
	// backdate tolerates small clock differences between the processes that check the certs.
	backdate = time.Hour
)

// Cert describes one leaf certificate signed by the CA.
type Cert struct {
	// Name is the file stem: the pair is stored as <Name>.crt and <Name>.key.
	Name         string
	CommonName   string
	Organization []string
	Usages       []x509.ExtKeyUsage
	DNSNames     []string
	IPs          []net.IP
}

// PKI is a directory holding a CA, a service-account key pair and leaf certificates.
type PKI struct {
	Dir string
	CA  *x509.Certificate
}

// Ensure makes dir hold a CA, a service-account key pair and every cert in certs, signed by
// that CA. Whatever is present and still usable is kept; the rest is generated. A new CA
// invalidates every leaf, so all of them are then reissued.
func Ensure(dir string, certs []Cert) (*PKI, error) {
	if err := validate(certs); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pki dir: %w", err)
	}
	now := time.Now()

	ca, caKey, caFresh, err := ensureCA(dir, now)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		if !caFresh && leafUsable(dir, c, ca, now) {
			continue
		}
		if err := issue(dir, c, ca, caKey, now); err != nil {
			return nil, err
		}
	}
	if err := ensureServiceAccountKey(dir); err != nil {
		return nil, err
	}
	return &PKI{Dir: dir, CA: ca}, nil
}

// CACertFile is the path of the CA certificate (PEM).
func (p *PKI) CACertFile() string { return filepath.Join(p.Dir, caName+".crt") }

// CAKeyFile is the path of the CA private key, for components that sign certificates.
func (p *PKI) CAKeyFile() string { return filepath.Join(p.Dir, caName+".key") }

// CertFile is the path of a leaf certificate (PEM).
func (p *PKI) CertFile(name string) string { return filepath.Join(p.Dir, name+".crt") }

// KeyFile is the path of a leaf private key (PEM, PKCS#8).
func (p *PKI) KeyFile(name string) string { return filepath.Join(p.Dir, name+".key") }

// ServiceAccountKeyFile is the private key that signs service-account tokens.
func (p *PKI) ServiceAccountKeyFile() string { return filepath.Join(p.Dir, saName+".key") }

// ServiceAccountPublicKeyFile is the public key that verifies service-account tokens.
func (p *PKI) ServiceAccountPublicKeyFile() string { return filepath.Join(p.Dir, saName+".pub") }

// CAPEM returns the CA certificate in PEM form.
func (p *PKI) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.CA.Raw})
}

// Pair returns a leaf certificate and its key in PEM form.
func (p *PKI) Pair(name string) (certPEM, keyPEM []byte, err error) {
	certPEM, err = os.ReadFile(p.CertFile(name))
	if err != nil {
		return nil, nil, fmt.Errorf("read certificate %s: %w", name, err)
	}
	keyPEM, err = os.ReadFile(p.KeyFile(name))
	if err != nil {
		return nil, nil, fmt.Errorf("read key %s: %w", name, err)
	}
	return certPEM, keyPEM, nil
}

func validate(certs []Cert) error {
	seen := map[string]bool{}
	for i, c := range certs {
		switch {
		case c.Name == "":
			return fmt.Errorf("cert %d: name is empty", i)
		case c.Name == caName || c.Name == saName:
			return fmt.Errorf("cert %d: name %q is reserved", i, c.Name)
		case filepath.Base(c.Name) != c.Name:
			return fmt.Errorf("cert %d: name %q must be a plain file name", i, c.Name)
		case seen[c.Name]:
			return fmt.Errorf("cert %d: name %q is used twice", i, c.Name)
		case c.CommonName == "":
			return fmt.Errorf("cert %q: common name is empty", c.Name)
		case len(c.Usages) == 0:
			return fmt.Errorf("cert %q: no extended key usage", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

func ensureCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, bool, error) {
	cert, key, err := loadPair(dir, caName)
	if err == nil && cert.IsCA && now.Add(renewBefore).Before(cert.NotAfter) {
		return cert, key, false, nil
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, false, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "kok-dev-ca"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, false, fmt.Errorf("create CA certificate: %w", err)
	}
	if err := writePair(dir, caName, der, key); err != nil {
		return nil, nil, false, err
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, false, fmt.Errorf("parse new CA certificate: %w", err)
	}
	return cert, key, true, nil
}

// leafUsable reports whether the stored pair for c can be kept as it is.
func leafUsable(dir string, c Cert, ca *x509.Certificate, now time.Time) bool {
	cert, _, err := loadPair(dir, c.Name)
	if err != nil || !now.Add(renewBefore).Before(cert.NotAfter) {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: c.Usages}); err != nil {
		return false
	}
	return cert.Subject.CommonName == c.CommonName &&
		slices.Equal(cert.Subject.Organization, c.Organization) &&
		slices.Equal(cert.ExtKeyUsage, c.Usages) &&
		slices.Equal(cert.DNSNames, c.DNSNames) &&
		slices.EqualFunc(cert.IPAddresses, c.IPs, func(a, b net.IP) bool { return a.Equal(b) })
}

func issue(dir string, c Cert, ca *x509.Certificate, caKey crypto.Signer, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key for %s: %w", c.Name, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: c.CommonName, Organization: c.Organization},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  c.Usages,
		DNSNames:     c.DNSNames,
		IPAddresses:  c.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("create certificate %s: %w", c.Name, err)
	}
	return writePair(dir, c.Name, der, key)
}

func ensureServiceAccountKey(dir string) error {
	keyPath := filepath.Join(dir, saName+".key")
	key, err := loadKey(keyPath)
	if err != nil {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return fmt.Errorf("generate service-account key: %w", err)
		}
		if err := writeKey(keyPath, key); err != nil {
			return err
		}
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("encode service-account public key: %w", err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubPath := filepath.Join(dir, saName+".pub")
	if old, err := os.ReadFile(pubPath); err == nil && slices.Equal(old, pubPEM) {
		return nil
	}
	return writeFile(pubPath, pubPEM, 0o644)
}

func loadPair(dir, name string) (*x509.Certificate, crypto.Signer, error) {
	data, err := os.ReadFile(filepath.Join(dir, name+".crt"))
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s.crt holds no PEM certificate", name)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s.crt: %w", name, err)
	}
	key, err := loadKey(filepath.Join(dir, name+".key"))
	if err != nil {
		return nil, nil, err
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, nil, fmt.Errorf("%s.key does not match %s.crt", name, name)
	}
	return cert, key, nil
}

func loadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s holds no PEM private key", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key of type %T cannot sign", path, key)
	}
	return signer, nil
}

// writePair writes the key before the certificate: a crash in between leaves a mismatch that
// the next run detects and repairs, never a certificate whose key is gone.
func writePair(dir, name string, der []byte, key crypto.Signer) error {
	if err := writeKey(filepath.Join(dir, name+".key"), key); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key %s: %w", path, err)
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// writeFile replaces path atomically so readers never see half a PEM file.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), mode)); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n, nil
}
